// Sign-in: the local cloud's development token endpoint, or OIDC (authorization code + PKCE) in AWS.

import { config, setToken } from './api.js';

const LOCAL_TOKEN_URL = './local-only/token'; // same origin as the page; absent in AWS
const PKCE_KEY = 'media-pipeline.oidc';

/** Whether the local cloud's token endpoint is here: only a 200 counts. */
export async function localSignInAvailable() {
  try {
    const res = await fetch(LOCAL_TOKEN_URL, { cache: 'no-store' });
    return res.status === 200;
  } catch {
    return false;
  }
}

/** Mint a token for `sub` from the local cloud's development key. */
export async function localSignIn(sub) {
  const res = await fetch(LOCAL_TOKEN_URL, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ sub }),
  });
  const data = await res.json().catch(() => null);
  if (!res.ok || !data || !data.token) {
    throw new Error((data && (data.error?.message || data.message)) || `The local sign-in answered ${res.status}.`);
  }
  setToken(data.token);
}

export const oidcConfigured = () => Boolean(config.auth.authorizeUrl && config.auth.clientId && config.auth.tokenUrl);

/** The host to name on the OIDC button. */
export function issuerHost() {
  try {
    return new URL(config.auth.issuer || config.auth.authorizeUrl).host;
  } catch {
    return 'your identity provider';
  }
}

// The registered redirect URI: this page without query or hash.
const redirectUri = () => `${location.origin}${location.pathname}`;

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const randomString = (size) => base64url(crypto.getRandomValues(new Uint8Array(size)));

/** Go to the authorization endpoint. crypto.subtle needs a secure context (https or 127.0.0.1). */
export async function startOidcSignIn() {
  const verifier = randomString(32);
  const state = randomString(16);
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const url = new URL(config.auth.authorizeUrl);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: config.auth.clientId,
    redirect_uri: redirectUri(),
    scope: (config.auth.scopes && config.auth.scopes.length ? config.auth.scopes : ['openid']).join(' '),
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

const looksLikeJwt = (token) => typeof token === 'string' && token.split('.').length === 3;

/**
 * On the way back from the identity provider (?code=…&state=…): exchange the code for tokens.
 * Returns false when this page load is no OIDC return; throws when the return is bad.
 */
export async function finishOidcSignIn() {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return false;
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || 'null');
  sessionStorage.removeItem(PKCE_KEY);
  history.replaceState(null, '', `${redirectUri()}#/sign-in`); // drop the code from the address bar
  if (params.has('error')) throw new Error(`Sign-in was refused: ${params.get('error_description') || params.get('error')}`);
  if (!saved || saved.state !== params.get('state')) throw new Error('Sign-in failed: the answer did not match this browser\'s request. Please try again.');
  const res = await fetch(config.auth.tokenUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code'),
      code_verifier: saved.verifier,
      client_id: config.auth.clientId,
      redirect_uri: redirectUri(),
    }),
  });
  const data = await res.json().catch(() => null);
  if (!res.ok || !data) throw new Error(`Sign-in failed: the token endpoint answered ${res.status}.`);
  // The API's JWT authorizer takes either; prefer the access token when it is a JWT.
  const token = looksLikeJwt(data.access_token) ? data.access_token : data.id_token;
  if (!looksLikeJwt(token)) throw new Error('Sign-in failed: no usable token came back.');
  setToken(token);
  return true;
}
