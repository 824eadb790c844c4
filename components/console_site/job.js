// #/jobs/{jobId}: one job, polled every 2 s until it settles (and once more after), with its player.

import { api } from './api.js';
import {
  $, confirmDialog, definitionList, describeError, formatBitrate, formatBytes, formatDuration, h, isSettled,
  replace, say, table, timeEl,
} from './dom.js';

const POLL_MS = 2000;

export function jobView(ctx, jobId) {
  const path = `jobs/${encodeURIComponent(jobId)}`;
  const player = createPlayer(ctx);
  let generation = 0; // a restarted poll loop makes the older one stop
  let job = null;

  const poll = async (gen, lastOne) => {
    try {
      job = await api('GET', path);
    } catch (e) {
      if (!ctx.alive || gen !== generation || e.status === 401) return;
      say($('job-load-error'), `The job could not be loaded: ${describeError(e)}.`);
      if (e.status !== 404) ctx.later(() => poll(gen, lastOne), POLL_MS); // keep trying through network trouble
      return;
    }
    if (!ctx.alive || gen !== generation) return;
    say($('job-load-error'), '');
    render(job, player);
    if (!isSettled(job)) ctx.later(() => poll(gen, false), POLL_MS);
    else if (!lastOne) {
      ctx.later(() => poll(gen, true), POLL_MS); // once after it settled: late links and deliveries
      loadDeliveries(ctx, jobId);
    }
  };

  const restart = (answer) => {
    generation += 1;
    ctx.cancelTimers();
    if (answer) render(answer, player);
    poll(generation, false);
  };

  const act = (button, run) => button.addEventListener('click', async () => {
    say($('job-action-error'), '');
    try {
      const answer = await run();
      if (answer !== undefined) restart(answer);
    } catch (e) {
      if (ctx.alive && e.status !== 401) say($('job-action-error'), describeError(e));
    }
  });
  act($('job-retry'), () => api('POST', `${path}/retry`));
  act($('job-reprocess'), () => api('POST', `${path}/reprocess`));
  act($('job-delete'), async () => {
    const ok = await confirmDialog('Delete this job? A running job is canceled, and its upload and every output are deleted.', 'Delete job');
    return ok ? api('DELETE', path) : undefined;
  });
  $('job-deliveries-refresh').addEventListener('click', () => loadDeliveries(ctx, jobId));

  $('job-title').textContent = `Job ${jobId}`;
  restart(null);
}

// ---- Rendering -------------------------------------------------------------------------------

function render(job, player) {
  $('job-title').textContent = job.source?.filename ? `Job: ${job.source.filename}` : `Job ${job.jobId}`;
  const status = $('job-status');
  status.textContent = job.status;
  status.dataset.status = job.status;
  $('job-progress').textContent = isSettled(job) ? '' : `(${job.progress}%)`;
  replace($('job-facts'), definitionList([
    ['Job ID', job.jobId],
    ['Attempt', String(job.attempt ?? 1)],
    ['Media type', job.mediaType],
    ['Engine', job.engine],
    ['Created', timeEl(job.createdAt)],
    ['Updated', timeEl(job.updatedAt)],
    ['Deletion requested', job.deletionRequestedAt ? timeEl(job.deletionRequestedAt) : null],
  ]));
  // REJECTED and FAILED jobs carry the reason as {code, message}.
  const label = { REJECTED: 'Rejected', FAILED: 'Failed', EXPIRED: 'Expired', CANCELED: 'Canceled' }[job.status] || 'Error';
  say($('job-error'), job.error ? `${label}: ${describeError(job.error)}` : '');
  $('job-retry').hidden = job.status !== 'FAILED';
  $('job-reprocess').hidden = job.status !== 'COMPLETED';
  $('job-delete').hidden = job.status === 'DELETED';

  renderSource(job);
  renderRenditions(job);
  player.update(job);
  renderImages(job);
}

function renderSource(job) {
  const source = job.source || {};
  const probe = job.probe || {};
  const image = job.image;
  const pairs = [
    ['File name', source.filename],
    ['Declared type', source.contentType],
    ['Size', source.size != null ? formatBytes(source.size) : null],
  ];
  if (image) {
    pairs.push(
      ['Format', image.format],
      ['Dimensions', `${image.width} x ${image.height}`],
      ['Colour mode', image.mode],
      ['Frames', String(image.frames ?? 1)],
      ['ICC profile', image.hasIccProfile ? 'yes' : 'no'],
      ['Camera', [image.cameraMake, image.cameraModel].filter(Boolean).join(' ') || null],
      ['Captured', image.capturedAt],
    );
  } else if (job.probe) {
    const codecs = [probe.videoCodec, probe.audioCodec].filter(Boolean).join(', ');
    pairs.push(
      ['Container', probe.formatName],
      ['Duration', probe.durationMs ? formatDuration(probe.durationMs) : null],
      ['Dimensions', probe.width && probe.height ? `${probe.width} x ${probe.height}` : null],
      ['Codecs', codecs || null],
      ['Frame rate', probe.frameRate ? `${Number(probe.frameRate).toFixed(2)} fps` : null],
      ['Bitrate', probe.bitRate ? formatBitrate(probe.bitRate) : null],
      ['Audio', probe.sampleRate ? `${probe.channels ?? '?'} channels, ${probe.sampleRate} Hz` : null],
      ['Probed size', probe.sizeBytes != null ? formatBytes(probe.sizeBytes) : null],
    );
  }
  replace($('job-source'), definitionList(pairs));
}

function renderRenditions(job) {
  if (!job.renditions.length) {
    replace($('renditions'), h('p', { class: 'muted' }, 'No renditions yet.'));
    return;
  }
  const rows = job.renditions.map((r) => {
    const percent = r.status === 'COMPLETED' ? 100 : r.progress;
    const bitrate = r.bytes && r.durationMs ? formatBitrate((r.bytes * 8 * 1000) / r.durationMs) : '—';
    const note = r.error ? describeError(r.error) : r.reason || '';
    return [
      r.name,
      h('span', { class: 'status', 'data-status': r.status }, r.status),
      h('progress', { max: '100', value: String(percent), 'aria-label': `${r.name} progress` }, `${percent}%`),
      r.width && r.height ? `${r.width} x ${r.height}` : '—',
      formatBytes(r.bytes),
      bitrate,
      r.status === 'COMPLETED' && r.url ? h('a', { href: r.url, download: '' }, `Download ${r.name}`) : '—',
      note,
    ];
  });
  replace($('renditions'), table(null, ['Name', 'Status', 'Progress', 'Size (px)', 'Size', 'Bitrate', 'Download', 'Notes'], rows));
}

/** Images change only when their set of names does: the links are re-signed on every poll. */
function renderImages(job) {
  const renditions = job.renditions.filter((r) => r.status === 'COMPLETED' && r.url);
  const thumbnails = [];
  if (job.playback) {
    thumbnails.push(['Poster', job.playback.poster, 'Poster frame of the video']);
    thumbnails.push(['Thumbnail sprite', job.playback.thumbnails.sprite, 'Sprite sheet of thumbnails through the video']);
  }
  showGallery('thumbnails', thumbnails.map(([name, url, alt]) => ({ key: name, node: figure(url, alt, name) })));

  const waveform = renditions.filter((r) => r.contentType === 'image/png' && job.mediaType === 'audio');
  showGallery('waveform', waveform.map((r) => ({ key: r.name, node: figure(r.url, 'Waveform of the audio', r.name) })));

  const derivatives = renditions.filter((r) => job.mediaType === 'image' && (r.contentType || '').startsWith('image/'));
  showGallery('derivatives', derivatives.map((r) => ({
    key: r.name,
    node: figure(r.url, `Derivative ${r.name}`, `${r.name} — ${r.width ?? '?'} x ${r.height ?? '?'}, ${formatBytes(r.bytes)}`),
  })));
}

function figure(url, alt, caption) {
  return h('figure', {}, h('img', { src: url, alt, loading: 'lazy' }), h('figcaption', {}, caption));
}

function showGallery(id, items) {
  const container = $(id);
  const key = items.map((item) => item.key).join('|');
  $(`${id}-section`).hidden = items.length === 0;
  if (container.dataset.key === key) return;
  container.dataset.key = key;
  replace(container, items.map((item) => item.node));
}

// ---- Player ----------------------------------------------------------------------------------

/** The <video> and its source picker; the Hls instance is destroyed on a switch and when leaving. */
function createPlayer(ctx) {
  const video = $('player');
  let hls = null;
  let sources = new Map(); // "mp4:720p" / "hls" -> URL
  let shownKey = null;

  const stop = () => {
    if (hls) hls.destroy();
    hls = null;
    video.removeAttribute('src');
    video.load();
  };
  ctx.onLeave(stop);

  const play = (name) => {
    const url = sources.get(name);
    if (!url) return;
    stop();
    say($('player-error'), '');
    if (name === 'hls') playHls(url);
    else video.src = url; // no autoplay: the user presses play
    $('player-source').textContent = name;
    for (const button of $('source-picker').querySelectorAll('button')) {
      button.setAttribute('aria-pressed', String(button.dataset.source === name));
    }
  };

  const playHls = (url) => {
    // hls.js needs Media Source Extensions; Safari on iOS has none but plays HLS natively.
    if (window.Hls && window.Hls.isSupported()) {
      // The CSP allows no blob: workers, so hls.js demuxes on the main thread.
      hls = new window.Hls({ enableWorker: false });
      hls.on(window.Hls.Events.ERROR, (event, data) => {
        if (data.fatal) say($('player-error'), `The HLS stream could not be played (${data.type}: ${data.details}).`);
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = url;
    } else {
      say($('player-error'), 'This browser cannot play HLS. Pick an MP4 rendition instead.');
    }
  };

  video.addEventListener('error', () => {
    if (!hls && video.getAttribute('src')) say($('player-error'), 'The video could not be played; the link may have expired. Reload the page.');
  });

  const update = (job) => {
    // The URLs are re-signed on every read: keep the newest, but rebuild the buttons only when the set changes.
    sources = new Map();
    for (const r of job.renditions) {
      const playable = /^(video|audio)\/mp4$/.test(r.contentType || '');
      if (r.status === 'COMPLETED' && r.url && playable) sources.set(`mp4:${r.name}`, r.url);
    }
    if (job.playback?.hls) sources.set('hls', job.playback.hls);
    const key = [...sources.keys()].join('|');
    $('player-section').hidden = sources.size === 0;
    if (job.playback?.poster && !video.getAttribute('poster')) video.setAttribute('poster', job.playback.poster);
    if (key === shownKey) return;
    shownKey = key;
    replace($('source-picker'), [...sources.keys()].map((name) =>
      h('button', { type: 'button', class: 'secondary', 'data-source': name, 'aria-pressed': 'false' },
        name === 'hls' ? 'HLS (adaptive)' : `MP4 ${name.slice(4)}`)));
    for (const button of $('source-picker').querySelectorAll('button')) {
      button.addEventListener('click', () => play(button.dataset.source));
    }
    if (sources.size === 0) {
      stop();
      $('player-source').textContent = 'nothing';
    }
  };

  return { update };
}

// ---- Webhook deliveries ------------------------------------------------------------------

/** Each endpoint's delivery log, filtered to this job (DeliveryView carries jobId). */
async function loadDeliveries(ctx, jobId) {
  const container = $('job-deliveries');
  try {
    const { webhooks } = await api('GET', 'webhooks');
    const rows = [];
    for (const webhook of webhooks) {
      const { deliveries } = await api('GET', `webhooks/${encodeURIComponent(webhook.id)}/deliveries?limit=100`);
      for (const d of deliveries.filter((delivery) => delivery.jobId === jobId)) {
        rows.push([webhook.url, d.event, d.outcome, String(d.attempt),
          d.statusCode ? `HTTP ${d.statusCode}` : d.error || '—', timeEl(d.attemptedAt)]);
      }
    }
    if (!ctx.alive) return;
    replace(container, rows.length
      ? table(null, ['Endpoint', 'Event', 'Outcome', 'Attempt', 'Answer', 'Time'], rows)
      : h('p', { class: 'muted' }, webhooks.length ? 'No deliveries for this job yet.' : 'You have no webhook endpoints.'));
  } catch (e) {
    if (ctx.alive && e.status !== 401) replace(container, h('p', { class: 'alert', role: 'alert' }, `Deliveries could not be loaded: ${describeError(e)}.`));
  }
}
