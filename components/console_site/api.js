// The public API: config, the token, JSON calls and the presigned upload.

const TOKEN_KEY = 'media-pipeline.token';

export const config = { apiUrl: '', auth: {} };

/** Read ./config.json (beside index.html): {apiUrl, auth: {issuer, clientId, authorizeUrl, tokenUrl, scopes}}. */
export async function loadConfig() {
  const res = await fetch('./config.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`config.json answered ${res.status}`);
  const data = await res.json();
  if (typeof data.apiUrl !== 'string' || !data.apiUrl) throw new Error('config.json has no apiUrl');
  config.apiUrl = data.apiUrl.endsWith('/') ? data.apiUrl : `${data.apiUrl}/`;
  config.auth = data.auth || {};
}

// The token lives in sessionStorage only: it goes when the tab closes, and never into the HTML.
export const getToken = () => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (token) => sessionStorage.setItem(TOKEN_KEY, token);
export const clearToken = () => sessionStorage.removeItem(TOKEN_KEY);

/** The JWT's payload (not verified: the API does that; the page only shows `sub` and checks `exp`). */
export function jwtClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

/** The signed-in user's claims, or null when there is no usable token. */
export function currentUser() {
  const token = getToken();
  const claims = token && jwtClaims(token);
  if (!claims) return null;
  if (claims.exp && claims.exp * 1000 < Date.now()) {
    clearToken();
    return null;
  }
  return claims;
}

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let onUnauthorized = () => {};
/** app.js sets what a 401 does: sign out with a message. */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/** Call the API: resolves to the parsed JSON body (null for 204), or throws an ApiError. */
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${getToken() || ''}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(new URL(path, config.apiUrl), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'NETWORK_ERROR', 'The API could not be reached. Check the connection and try again.');
  }
  if (res.status === 401) {
    onUnauthorized();
    throw new ApiError(401, 'UNAUTHORIZED', 'Your session has ended. Please sign in again.');
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    // Every refusal is {"error": {"code", "message"}}; API Gateway's own answers are {"message"}.
    const error = (data && data.error) || {};
    const message = error.message || (data && data.message) || `The API answered ${res.status}.`;
    // Retry-After is readable here only if the API's CORS exposes it.
    throw new ApiError(res.status, error.code || `HTTP_${res.status}`, message, res.headers.get('Retry-After'));
  }
  return data;
}

// S3 error codes a presigned POST may answer, in plain words.
const S3_ERRORS = {
  EntityTooLarge: 'the file is larger than the upload allows',
  EntityTooSmall: 'the file is empty',
  AccessDenied: 'the upload form was refused (it may have expired); please try again',
  ExpiredToken: 'the upload form has expired; please try again',
};

/**
 * Send the file with the presigned POST form. XMLHttpRequest rather than fetch because only
 * XHR reports upload progress. The form's fields go first and the file last, as S3 requires.
 */
export function postUploadForm(form, file, onProgress) {
  const body = new FormData();
  for (const [name, value] of Object.entries(form.fields)) body.append(name, value);
  body.append('file', file);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', form.url);
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new Error(describeS3Error(xhr)));
    });
    xhr.addEventListener('error', () => reject(new Error('The upload could not reach the storage service. Check the connection and try again.')));
    xhr.addEventListener('abort', () => reject(new Error('The upload was stopped.')));
    xhr.send(body);
  });
}

/** S3 answers a refused form with XML: <Error><Code>…</Code><Message>…</Message></Error>. */
function describeS3Error(xhr) {
  const xml = new DOMParser().parseFromString(xhr.responseText || '', 'application/xml');
  const code = xml.querySelector('Error > Code')?.textContent || `HTTP ${xhr.status}`;
  const message = xml.querySelector('Error > Message')?.textContent || '';
  const words = S3_ERRORS[code] || (message ? `the storage service said: ${message}` : 'the storage service refused it');
  return `Upload refused: ${words} (${code}).`;
}
