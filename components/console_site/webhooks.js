// #/webhooks: register endpoints, see them, rotate their secrets, read their delivery logs.

import { api } from './api.js';
import { $, confirmDialog, describeError, h, replace, say, table, timeEl } from './dom.js';

// WebhookRegistration.events: the enum in docs/openapi.json (all of them when absent).
const EVENT_TYPES = ['job.completed', 'job.failed', 'job.rejected', 'job.expired', 'job.canceled', 'job.deleted'];

export function webhooksView(ctx) {
  const fieldset = $('webhook-events');
  for (const type of EVENT_TYPES) {
    const id = `event-${type.replace('.', '-')}`;
    fieldset.append(h('div', { class: 'checkbox' },
      h('input', { type: 'checkbox', id, name: 'events', value: type, checked: true }),
      h('label', { for: id }, type)));
  }

  $('webhook-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    say($('webhook-error'), '');
    const events = [...fieldset.querySelectorAll('input:checked')].map((box) => box.value);
    if (!events.length) return say($('webhook-error'), 'Choose at least one event.');
    try {
      const created = await api('POST', 'webhooks', { url: $('webhook-url').value.trim(), events });
      if (!ctx.alive) return;
      event.target.reset();
      showSecret(created.secret, `The signing secret of ${created.url}. Copy it now: it will not be shown again.`);
      loadList(ctx);
    } catch (e) {
      if (ctx.alive && e.status !== 401) say($('webhook-error'), `The endpoint was not registered: ${describeError(e)}.`);
    }
  });

  $('webhook-secret-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('webhook-secret').textContent);
      $('webhook-secret-copied').textContent = 'Copied.';
    } catch {
      $('webhook-secret-copied').textContent = 'Copying failed: select the secret and copy it by hand.';
    }
  });

  loadList(ctx);
}

/** The secret lives only in this view's DOM: leaving the view drops it. */
function showSecret(secret, note) {
  $('webhook-secret-note').textContent = note;
  $('webhook-secret').textContent = secret;
  $('webhook-secret-copied').textContent = '';
  $('webhook-secret-notice').hidden = false;
}

async function loadList(ctx) {
  let webhooks;
  try {
    ({ webhooks } = await api('GET', 'webhooks'));
  } catch (e) {
    if (ctx.alive && e.status !== 401) say($('webhooks-error'), `The endpoints could not be loaded: ${describeError(e)}.`);
    return;
  }
  if (!ctx.alive) return;
  say($('webhooks-error'), '');
  $('webhooks-empty').hidden = webhooks.length > 0;
  replace($('webhooks-table').tBodies[0], webhooks.map((webhook) => h('tr', {},
    h('td', {}, h('span', { class: 'url' }, webhook.url)),
    h('td', {}, webhook.events.join(', ')),
    h('td', {}, webhook.status, webhook.disabledReason ? ` (${webhook.disabledReason})` : ''),
    h('td', {}, timeEl(webhook.createdAt)),
    h('td', { class: 'actions' }, actionButtons(ctx, webhook)))));
}

function actionButtons(ctx, webhook) {
  const button = (label, action, run) => {
    const el = h('button', { type: 'button', class: 'secondary', 'data-action': action, 'aria-label': `${label}: ${webhook.url}` }, label);
    el.addEventListener('click', async () => {
      say($('webhooks-error'), '');
      try {
        await run();
      } catch (e) {
        if (ctx.alive && e.status !== 401) say($('webhooks-error'), `${label} failed: ${describeError(e)}.`);
      }
    });
    return el;
  };
  const id = encodeURIComponent(webhook.id);
  return [
    button('Rotate secret', 'rotate', async () => {
      const rotated = await api('POST', `webhooks/${id}/rotate-secret`);
      if (!ctx.alive) return;
      const until = new Date(rotated.previousSecretExpiresAt).toLocaleString();
      showSecret(rotated.secret, `The new signing secret of ${webhook.url}; the old one keeps signing until ${until}. Copy it now: it will not be shown again.`);
      $('webhook-secret-notice').scrollIntoView({ block: 'nearest' });
    }),
    button('Deliveries', 'deliveries', () => showDeliveries(ctx, webhook)),
    button('Delete', 'delete', async () => {
      if (!(await confirmDialog(`Delete the endpoint ${webhook.url}? Nothing more is sent to it.`, 'Delete endpoint'))) return;
      await api('DELETE', `webhooks/${id}`);
      if (!ctx.alive) return;
      $('webhook-deliveries-section').hidden = true;
      loadList(ctx);
    }),
  ];
}

async function showDeliveries(ctx, webhook) {
  const { deliveries } = await api('GET', `webhooks/${encodeURIComponent(webhook.id)}/deliveries?limit=100`);
  if (!ctx.alive) return;
  const heading = $('webhook-deliveries-heading');
  heading.textContent = `Deliveries to ${webhook.url}`;
  const rows = deliveries.map((d) => [
    d.event,
    h('a', { href: `#/jobs/${encodeURIComponent(d.jobId)}` }, d.jobId),
    h('span', { class: 'status', 'data-status': d.outcome }, d.outcome),
    String(d.attempt),
    d.statusCode ? `HTTP ${d.statusCode}` : d.error || '—',
    d.durationMs != null ? `${d.durationMs} ms` : '—',
    timeEl(d.attemptedAt),
    d.nextAttemptAt ? timeEl(d.nextAttemptAt) : '—',
  ]);
  replace($('webhook-deliveries'), rows.length
    ? table(null, ['Event', 'Job', 'Outcome', 'Attempt', 'Answer', 'Took', 'Time', 'Next attempt'], rows)
    : h('p', { class: 'muted' }, 'No deliveries yet.'));
  $('webhook-deliveries-section').hidden = false;
  heading.focus();
}
