// #/jobs: upload a file, see quota use, and the list of jobs (newest first, 20 a page).

import { api, postUploadForm } from './api.js';
import { $, describeError, formatBytes, h, isSettled, replace, say, statusChip, timeEl } from './dom.js';

const PAGE_SIZE = 20;
const POLL_MS = 3000;

// Some browsers give no type for some containers (e.g. .mkv): guess from the extension.
const TYPES_BY_EXTENSION = {
  mkv: 'video/x-matroska', mov: 'video/quicktime', mp4: 'video/mp4', webm: 'video/webm', avi: 'video/x-msvideo',
  ts: 'video/mp2t', flv: 'video/x-flv', m4a: 'audio/mp4', mp3: 'audio/mpeg', wav: 'audio/wav', flac: 'audio/flac',
  heic: 'image/heic', webp: 'image/webp',
};

function contentTypeOf(file) {
  if (file.type) return file.type;
  const extension = file.name.split('.').pop().toLowerCase();
  return TYPES_BY_EXTENSION[extension] || 'application/octet-stream';
}

export function jobsView(ctx) {
  setUpUpload(ctx);
  showUsage(ctx);
  setUpList(ctx);
}

// ---- Upload -------------------------------------------------------------------------------

function setUpUpload(ctx) {
  const zone = $('drop-zone');
  const input = $('upload-file');
  input.addEventListener('change', () => input.files[0] && upload(ctx, input.files[0]));
  // The zone is focusable: Enter or Space opens the file picker.
  zone.addEventListener('keydown', (event) => {
    if (event.target === zone && (event.key === 'Enter' || event.key === ' ')) {
      event.preventDefault();
      input.click();
    }
  });
  zone.addEventListener('dragover', (event) => {
    event.preventDefault(); // needed for the drop event to fire
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    const file = event.dataTransfer.files[0];
    if (file) upload(ctx, file);
  });
}

async function upload(ctx, file) {
  const status = $('upload-status');
  const progress = $('upload-progress');
  const error = $('upload-error');
  const input = $('upload-file');
  say(error, '');
  input.disabled = true;
  status.textContent = `Asking for an upload form for ${file.name}…`;
  try {
    let created;
    try {
      created = await api('POST', 'uploads', { filename: file.name, contentType: contentTypeOf(file), size: file.size });
    } catch (e) {
      if (e.status === 401) return;
      const wait = e.retryAfter ? ` Try again in ${e.retryAfter} seconds.` : '';
      throw new Error(`The upload was refused: ${describeError(e)}.${wait}`);
    }
    status.textContent = `Uploading ${file.name}…`;
    progress.value = 0;
    progress.hidden = false;
    await postUploadForm(created.upload, file, (fraction) => {
      progress.value = Math.round(fraction * 100);
    });
    status.textContent = `Uploaded ${file.name}.`;
    if (ctx.alive) location.hash = `#/jobs/${encodeURIComponent(created.jobId)}`;
  } catch (e) {
    status.textContent = '';
    say(error, e.message);
  } finally {
    progress.hidden = true;
    input.disabled = false;
    input.value = '';
  }
}

async function showUsage(ctx) {
  try {
    const usage = await api('GET', 'usage');
    if (!ctx.alive) return;
    const part = (label, use, format = String) =>
      `${label}: ${format(use.used)}${use.limit ? ` of ${format(use.limit)}` : ' (no limit)'}`;
    say($('usage'), [
      part('Open uploads', usage.openUploads),
      part('Jobs this hour', usage.jobsThisHour),
      part('Stored', usage.storedBytes, formatBytes),
    ].join(' · '));
  } catch {
    // Optional line: leave it hidden.
  }
}

// ---- List -----------------------------------------------------------------------------------

/** "45% — 1080p 30%, 720p 60%": the job's progress, then each rendition's. */
function progressSummary(job) {
  const parts = job.renditions.map((r) => `${r.name} ${r.status === 'COMPLETED' ? 100 : r.progress}%`);
  return parts.length ? `${job.progress}% — ${parts.join(', ')}` : `${job.progress}%`;
}

function fillRow(row, job) {
  const name = job.source?.filename || job.jobId;
  const summary = progressSummary(job);
  const cells = [
    [name, () => h('a', { href: `#/jobs/${encodeURIComponent(job.jobId)}` }, name)],
    [job.status, () => statusChip(job.status)],
    [summary, () => summary],
    [job.createdAt, () => timeEl(job.createdAt)],
  ];
  // Keep the row (and a focused link in it) and rebuild only the cells whose value changed.
  cells.forEach(([value, build], index) => {
    const cell = row.cells[index] || row.insertCell();
    if (cell.dataset.value !== value) {
      cell.dataset.value = value;
      replace(cell, build());
    }
  });
}

function setUpList(ctx) {
  const body = $('jobs-table').tBodies[0];
  const moreButton = $('jobs-more');
  const rows = new Map(); // jobId -> <tr>
  const jobs = new Map(); // jobId -> last JobView
  let nextCursor = null;

  const put = (job, { prepend = false, before = null } = {}) => {
    jobs.set(job.jobId, job);
    let row = rows.get(job.jobId);
    if (!row) {
      row = document.createElement('tr');
      rows.set(job.jobId, row);
      if (prepend) body.insertBefore(row, before);
      else body.append(row);
    }
    fillRow(row, job);
  };

  const loadPage = async (cursor) => {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursor) query.set('cursor', cursor);
    return api('GET', `jobs?${query}`);
  };

  const showError = (e) => {
    if (e.status !== 401) say($('jobs-error'), `The jobs could not be loaded: ${describeError(e)}.`);
  };

  const afterChange = () => {
    moreButton.hidden = !nextCursor;
    $('jobs-empty').hidden = rows.size > 0;
    ctx.cancelTimers();
    if ([...jobs.values()].some((job) => !isSettled(job))) ctx.later(poll, POLL_MS);
  };

  // Poll: re-read the first page (new jobs appear at the top), and any older job still running one by one.
  const poll = async () => {
    try {
      const page = await loadPage(null);
      if (!ctx.alive) return;
      const firstOld = body.rows[0] || null;
      for (const job of page.jobs) put(job, { prepend: !rows.has(job.jobId), before: firstOld });
      if (!nextCursor && jobs.size <= page.jobs.length) nextCursor = page.nextCursor;
      const seen = new Set(page.jobs.map((job) => job.jobId));
      for (const job of [...jobs.values()].filter((j) => !seen.has(j.jobId) && !isSettled(j))) {
        put(await api('GET', `jobs/${encodeURIComponent(job.jobId)}`));
        if (!ctx.alive) return;
      }
      say($('jobs-error'), '');
    } catch (e) {
      if (!ctx.alive) return;
      showError(e);
    }
    afterChange();
  };

  const more = async () => {
    moreButton.disabled = true;
    try {
      const page = await loadPage(nextCursor);
      if (!ctx.alive) return;
      for (const job of page.jobs) put(job);
      nextCursor = page.nextCursor;
      say($('jobs-error'), '');
    } catch (e) {
      if (!ctx.alive) return;
      showError(e);
    } finally {
      moreButton.disabled = false;
    }
    afterChange();
  };

  moreButton.addEventListener('click', more);
  more(); // the first page: nextCursor is still null
}
