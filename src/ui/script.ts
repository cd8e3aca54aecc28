/**
 * The status page's script, plain browser JavaScript (no build step). It refreshes the front
 * page from the JSON API and follows a run's log. Text reaches the page only as text nodes
 * (textContent), never as markup. Its formatting mirrors format.ts, which renders the page first.
 */
export const SCRIPT = String.raw`'use strict';
(() => {
  const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'cancelled', 'superseded', 'interrupted', 'skipped']);
  const REFRESH_MS = 3000;
  const LOG_LIMIT = 2000000;

  const shortSha = (sha) => (sha ? sha.slice(0, 7) : '');
  const formatTime = (iso) => (iso ? iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC') : '');
  function refName(run) {
    const ref = run.branch || run.ref.replace(/^refs\/(heads|tags)\//, '');
    if (run.source === undefined) return ref;
    return ref ? ref + ', event from ' + run.source : 'event from ' + run.source;
  }
  const jobOrigin = (job) => (job.source ? 'events from ' + job.source : job.repo);
  const triggerText = (trigger) => (trigger.pusher ? trigger.type + ' by ' + trigger.pusher : trigger.type);
  const pad = (n) => String(n).padStart(2, '0');

  function formatAge(iso, now) {
    const then = iso ? Date.parse(iso) : NaN;
    if (Number.isNaN(then)) return '';
    const seconds = Math.max(0, Math.round((now - then) / 1000));
    if (seconds < 60) return seconds + 's ago';
    if (seconds < 3600) return Math.floor(seconds / 60) + 'm ago';
    if (seconds < 86400) return Math.floor(seconds / 3600) + 'h ago';
    return Math.floor(seconds / 86400) + 'd ago';
  }

  function formatDuration(ms) {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return '';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    const minutes = Math.floor(ms / 60000);
    if (minutes < 60) return minutes + 'm ' + pad(Math.floor((ms % 60000) / 1000)) + 's';
    return Math.floor(minutes / 60) + 'h ' + pad(minutes % 60) + 'm';
  }

  function runDuration(run, now) {
    if (typeof run.durationMs === 'number') return formatDuration(run.durationMs);
    if (run.startedAt && !FINAL.has(run.status)) return formatDuration(now - Date.parse(run.startedAt));
    return '';
  }

  function exitText(run) {
    if (run.exitCode !== undefined && run.exitCode !== null) return 'exit code ' + run.exitCode;
    return run.signal ? 'signal ' + run.signal : '';
  }

  const liveFields = (run, now) => ({
    deployedSha: run.deployedSha || '—',
    startedAt: formatTime(run.startedAt) || '—',
    finishedAt: formatTime(run.finishedAt) || '—',
    duration: runDuration(run, now) || '—',
    exit: exitText(run) || '—',
    reason: run.reason || '—',
  });

  /** An element whose children are elements or text; strings become text nodes, never markup. */
  function el(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    for (const child of children) node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    return node;
  }

  const badge = (status, title) => el('span', Object.assign({ class: 'badge badge-' + status }, title ? { title } : {}), [status.replace('_', ' ')]);
  const runLink = (id, child) => el('a', { href: '/runs/' + encodeURIComponent(id) }, [child]);
  const age = (iso, now) => (iso ? el('time', { datetime: iso, title: formatTime(iso) }, [formatAge(iso, now)]) : '');
  const td = (children, className) => el('td', className ? { class: className } : {}, children);

  function jobRow(job, now) {
    const status = [badge(job.state)];
    const last = job.lastRun;
    if (last && last.id !== job.running && last.id !== job.queued) status.push(' ', el('span', { class: 'muted' }, ['last']), ' ', runLink(last.id, badge(last.status, 'last run')));
    const deployed = job.deployedSha ? [el('code', {}, [shortSha(job.deployedSha)]), ' ', age(job.deployedAt, now)] : ['—'];
    return el('tr', {}, [td([job.name], 'strong'), td(status), td(deployed), td([jobOrigin(job)]), td([job.branches.join(', ')])]);
  }

  function runRow(run, now) {
    return el('tr', {}, [
      td([badge(run.status)]),
      td([runLink(run.id, el('code', {}, [run.id]))]),
      td([run.job]),
      td([triggerText(run.trigger)]),
      td([refName(run)]),
      td([el('code', {}, [shortSha(run.deployedSha || run.sha)])]),
      td([runDuration(run, now)]),
      td([age(run.queuedAt, now)]),
    ]);
  }

  function fill(id, rows, columns, empty) {
    if (rows.length === 0) {
      const cell = td([empty]);
      cell.colSpan = columns;
      rows = [el('tr', { class: 'empty' }, [cell])];
    }
    document.getElementById(id).replaceChildren(...rows);
  }

  function notice(text) {
    const node = document.getElementById('notice');
    node.textContent = text;
    node.hidden = !text;
  }

  async function getJson(url) {
    const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } });
    if (!response.ok) throw new Error(url + ' answered HTTP ' + response.status);
    return response.json();
  }

  /** Runs task every ms while the page is visible, never twice at once, and at once when it shows again. */
  function every(ms, task) {
    let timer = 0;
    let busy = false;
    async function tick() {
      clearTimeout(timer);
      if (busy) return;
      busy = true;
      try {
        if (!document.hidden) await task();
      } finally {
        busy = false;
        timer = setTimeout(tick, ms);
      }
    }
    timer = setTimeout(tick, ms);
    document.addEventListener('visibilitychange', () => document.hidden || tick());
  }

  async function refreshIndex() {
    try {
      const [jobs, runs] = await Promise.all([getJson('/api/jobs'), getJson('/api/runs?limit=20')]);
      const now = Date.now();
      fill('jobs', jobs.jobs.filter(Boolean).map((job) => jobRow(job, now)), 5, 'No jobs configured.');
      fill('runs', runs.runs.map((run) => runRow(run, now)), 8, 'No runs yet.');
      notice('');
    } catch (error) {
      notice('Could not refresh (' + error.message + '); retrying.');
    }
  }

  function followRun(runId) {
    const log = document.getElementById('log');
    const runUrl = '/api/runs/' + encodeURIComponent(runId);
    let kept = 0;
    let asked = 0;
    let shown = 0;
    // The record can say how the run ended before the stream has brought the log's last bytes
    // (the server sends what was appended every 200 ms): the page shows the ending only once
    // the stream has ended, so a final badge always comes with the whole log.
    let streaming = false;

    function append(text) {
      if (!text) return;
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
      log.appendChild(document.createTextNode(text));
      kept += text.length;
      while (kept > LOG_LIMIT && log.firstChild) {
        kept -= log.firstChild.textContent.length;
        log.removeChild(log.firstChild);
        log.classList.add('trimmed');
      }
      if (atBottom) log.scrollTop = log.scrollHeight;
    }

    async function refreshRecord() {
      const ask = ++asked;
      try {
        const { run } = await getJson(runUrl);
        // Answers can overtake each other: never let an older one undo a newer one.
        if (ask < shown || (streaming && FINAL.has(run.status))) return run;
        shown = ask;
        document.getElementById('run-status').replaceChildren(badge(run.status));
        const fields = liveFields(run, Date.now());
        for (const node of document.querySelectorAll('[data-field]')) {
          if (Object.hasOwn(fields, node.dataset.field)) node.textContent = fields[node.dataset.field];
        }
        notice('');
        return run;
      } catch (error) {
        notice('Could not refresh the run (' + error.message + '); retrying.');
        return undefined;
      }
    }

    async function follow() {
      const poll = setInterval(refreshRecord, 2000);
      let started = false;
      streaming = true;
      try {
        const response = await fetch(runUrl + '/log?follow=1', { credentials: 'same-origin', cache: 'no-store' });
        if (response.status === 404) {
          notice('This run no longer exists: finished runs beyond keep_runs are deleted.');
          return;
        }
        if (!response.ok || !response.body) throw new Error('the log answered HTTP ' + response.status);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          const text = done ? decoder.decode() : decoder.decode(value, { stream: true });
          if (text && !started) {
            // The first output: the run has started, so its badge should say so now.
            started = true;
            log.textContent = '';
            log.classList.remove('trimmed');
            kept = 0;
            refreshRecord();
          }
          append(text);
          if (done) break;
        }
      } catch (error) {
        notice('The log stream broke off (' + error.message + '); reconnecting.');
      } finally {
        clearInterval(poll);
        streaming = false;
      }
      const run = await refreshRecord();
      if (run && FINAL.has(run.status)) {
        if (!started) log.textContent = '(the log is empty)';
        return;
      }
      setTimeout(follow, 2000);
    }

    follow();
  }

  const page = document.body.dataset.page;
  if (page === 'index') every(REFRESH_MS, refreshIndex);
  if (page === 'run') followRun(document.body.dataset.runId);
})();
`;
