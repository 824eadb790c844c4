// Entry point: config, sign-in state, the header and the hash router.

import { clearToken, currentUser, getToken, loadConfig, setUnauthorizedHandler } from './api.js';
import { finishOidcSignIn, issuerHost, localSignIn, localSignInAvailable, oidcConfigured, startOidcSignIn } from './auth.js';
import { $, say } from './dom.js';
import { jobsView } from './jobs.js';
import { jobView } from './job.js';
import { webhooksView } from './webhooks.js';

/** What one shown view owns: its timers and what to undo when the user leaves it. */
class ViewContext {
  constructor() {
    this.alive = true;
    this.timers = new Set();
    this.leaveHandlers = [];
  }

  /** Run fn after ms, unless the view is left first. */
  later(fn, ms) {
    const id = setTimeout(() => {
      this.timers.delete(id);
      if (this.alive) fn();
    }, ms);
    this.timers.add(id);
  }

  cancelTimers() {
    for (const id of this.timers) clearTimeout(id);
    this.timers.clear();
  }

  onLeave(fn) {
    this.leaveHandlers.push(fn);
  }

  leave() {
    this.alive = false;
    this.cancelTimers();
    for (const fn of this.leaveHandlers) fn();
  }
}

// [hash pattern, template id in index.html, view function(ctx, ...captured groups)]
const routes = [
  [/^#\/sign-in$/, 'tpl-sign-in', signInView],
  [/^#\/jobs$/, 'tpl-jobs', jobsView],
  [/^#\/jobs\/([^/]+)$/, 'tpl-job', jobView],
  [/^#\/webhooks$/, 'tpl-webhooks', webhooksView],
];

let current = null;
let flash = ''; // a message for the sign-in page, e.g. why the user was signed out

/** Put a view's template into #view and give it focus, so screen readers hear the new page. */
function mount(templateId) {
  const view = $('view');
  view.replaceChildren($(templateId).content.cloneNode(true));
  view.querySelector('h1')?.focus();
}

function route() {
  if (current) current.leave();
  current = null;
  say($('app-error'), '');
  const user = currentUser();
  const hash = location.hash || '#/jobs';
  if (!user && hash !== '#/sign-in') return void location.replace('#/sign-in');
  if (user && hash === '#/sign-in') return void location.replace('#/jobs');
  renderHeader(user, hash);
  for (const [pattern, templateId, view] of routes) {
    const match = hash.match(pattern);
    if (!match) continue;
    current = new ViewContext();
    mount(templateId);
    view(current, ...match.slice(1).map(decodeURIComponent));
    return;
  }
  location.replace('#/jobs');
}

function renderHeader(user, hash) {
  $('main-nav').hidden = !user;
  $('user-box').hidden = !user;
  $('signed-in-as').textContent = user ? user.sub || '(unknown user)' : '';
  for (const link of document.querySelectorAll('[data-nav]')) {
    const active = hash.startsWith(`#/${link.dataset.nav}`);
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function signOut(message) {
  if (!getToken()) return; // several calls may answer 401 at once: the first one signs out
  clearToken();
  flash = message;
  if (location.hash === '#/sign-in') route();
  else location.hash = '#/sign-in';
}

async function signInView(ctx) {
  say($('sign-in-message'), flash);
  flash = '';
  const error = $('sign-in-error');

  if (oidcConfigured()) {
    $('oidc-section').hidden = false;
    $('oidc-sign-in').textContent = `Sign in with ${issuerHost()}`;
    $('oidc-sign-in').addEventListener('click', () => startOidcSignIn().catch((e) => say(error, e.message)));
  }

  $('sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    say(error, '');
    try {
      await localSignIn($('sign-in-user').value.trim());
      location.hash = '#/jobs';
    } catch (e) {
      say(error, e.message);
    }
  });

  const local = await localSignInAvailable();
  if (!ctx.alive) return;
  $('local-sign-in').hidden = !local;
  $('no-sign-in').hidden = local || oidcConfigured();
}

async function start() {
  setUnauthorizedHandler(() => signOut('Your session has ended or was refused (401). Please sign in again.'));
  $('sign-out').addEventListener('click', () => signOut('You are signed out.'));
  // With hash routing, following href="#main" would be a route change: move focus instead.
  $('skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    $('main').focus();
  });
  try {
    await loadConfig();
  } catch (e) {
    $('view').replaceChildren();
    say($('app-error'), `The console could not load its configuration (config.json): ${e.message}`);
    return;
  }
  try {
    if (await finishOidcSignIn()) location.hash = '#/jobs';
  } catch (e) {
    flash = e.message;
  }
  window.addEventListener('hashchange', route);
  route();
}

// Anything unexpected still ends up in words on the page, never a blank page.
window.addEventListener('unhandledrejection', (event) => {
  if (event.reason && event.reason.status === 401) return; // already signing out
  say($('app-error'), `Something went wrong: ${event.reason?.message || event.reason}`);
});

start();
