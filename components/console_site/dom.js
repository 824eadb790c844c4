// Small DOM and formatting helpers. Everything from the API is untrusted: it only ever
// reaches the page as textContent or as an attribute value, never as HTML.

/** Create an element: h('a', {href: '#/jobs', class: 'x'}, 'text', child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'hidden' || name === 'disabled') el[name] = true;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, ...children);
  return el;
}

/** Append strings (as text) and nodes, skipping null/undefined/false. */
export function append(el, ...children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, ...children);
}

export const $ = (id) => document.getElementById(id);

/** Show a message in an alert/status region, or hide it when the message is empty. */
export function say(el, message) {
  el.textContent = message || '';
  el.hidden = !message;
}

export const FINAL_STATUSES = new Set(['COMPLETED', 'FAILED', 'REJECTED', 'EXPIRED', 'CANCELED', 'DELETED']);

/** A job needs no more polling: a final status, and a requested deletion has finished. */
export function isSettled(job) {
  if (!FINAL_STATUSES.has(job.status)) return false;
  return !(job.deletionRequestedAt && job.status !== 'DELETED');
}

/** A status chip; CSS colours it by data-status. */
export function statusChip(status) {
  return h('span', { class: 'status', 'data-status': status }, status);
}

// Binary units, as the stack's limits are set (maxStoredBytesPerUser: 50 GiB).
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  const seconds = Math.round(ms / 1000);
  const m = Math.floor(seconds / 60);
  const s = String(seconds % 60).padStart(2, '0');
  return `${m}:${s}`;
}

export function formatBitrate(bitsPerSecond) {
  if (!bitsPerSecond) return '—';
  return bitsPerSecond >= 1e6 ? `${(bitsPerSecond / 1e6).toFixed(1)} Mbit/s` : `${Math.round(bitsPerSecond / 1e3)} kbit/s`;
}

/** A <time> element with the ISO value as datetime and local wording as text. */
export function timeEl(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return h('time', { datetime: iso }, Number.isNaN(date.getTime()) ? iso : date.toLocaleString());
}

/** "message (CODE)", the way every error ({code, message} or an ApiError) is worded on the page. */
export function describeError(error) {
  if (!error) return '';
  const message = String(error.message || '').replace(/\.$/, '');
  return error.code ? `${message} (${error.code})` : message;
}

/** A <dl> from [term, value] pairs, leaving out empty values. */
export function definitionList(pairs) {
  const dl = h('dl');
  for (const [term, value] of pairs) {
    if (value === null || value === undefined || value === '') continue;
    append(dl, h('dt', {}, term), h('dd', {}, value));
  }
  return dl;
}

/** A table from column headings and rows of cells (strings or nodes). */
export function table(caption, headings, rows, attrs = {}) {
  return h('table', attrs,
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, headings.map((text) => h('th', { scope: 'col' }, text)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell))))));
}

/** Ask with the page's <dialog id="confirm-dialog">; resolves true when the user confirms. */
export function confirmDialog(message, confirmLabel) {
  const dialog = $('confirm-dialog');
  $('confirm-message').textContent = message;
  $('confirm-ok').textContent = confirmLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}
