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
  const runLink = (id, child) => el('a', { href: 'runs/' + encodeURIComponent(id) }, [child]);
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
    const body = document.getElementById(id);
    // Only what changed is replaced, so text being selected (a run id to copy) stays selected
    // across refreshes unless it changed itself.
    if (body.rows.length !== rows.length || rows.some((row, i) => row.cells.length !== body.rows[i].cells.length)) {
      body.replaceChildren(...rows);
      return;
    }
    rows.forEach((row, i) => {
      const old = body.rows[i];
      if (old.className !== row.className) return old.replaceWith(row);
      Array.from(row.cells).forEach((cell, j) => old.cells[j].isEqualNode(cell) || old.cells[j].replaceWith(cell));
    });
  }

  function notice(text) {
    const node = document.getElementById('notice');
    node.textContent = text;
    node.hidden = !text;
  }

  // Set when the daemon refuses the page's token (it was changed): nothing is asked again
  // until the page is reloaded, which asks for the new one.
  let refused = false;
  function refuse(status) {
    if (status !== 401) return;
    refused = true;
    notice('The daemon refused the token this page was opened with (HTTP 401): reload the page to sign in again.');
  }

  // The daemon's clock, from its answers' Date header (whole seconds): ages and durations are
  // worked out against it, not against a browser's clock that may be minutes off (a phone's).
  let skew = 0;
  const now = () => Date.now() + skew;

  async function getJson(url) {
    const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } });
    const served = Date.parse(response.headers.get('date') || '');
    if (!Number.isNaN(served)) {
      const offset = served + 500 - Date.now();
      skew = Math.abs(offset) > 2000 ? offset : 0;
    }
    refuse(response.status);
    if (!response.ok) throw new Error(url + ' answered HTTP ' + response.status);
    return response.json();
  }

  /** Runs task every ms while the page is visible, never twice at once, and at once when it shows again. */
  function every(ms, task) {
    let timer = 0;
    let busy = false;
    async function tick() {
      clearTimeout(timer);
      if (busy || refused) return;
      busy = true;
      try {
        if (!document.hidden) await task();
      } finally {
        busy = false;
        if (!refused) timer = setTimeout(tick, ms);
      }
    }
    timer = setTimeout(tick, ms);
    document.addEventListener('visibilitychange', () => document.hidden || tick());
  }

  async function refreshIndex() {
    try {
      const [jobs, runs] = await Promise.all([getJson('api/jobs'), getJson('api/runs?limit=20')]);
      const at = now();
      fill('jobs', jobs.jobs.filter(Boolean).map((job) => jobRow(job, at)), 5, 'No jobs configured.');
      fill('runs', runs.runs.map((run) => runRow(run, at)), 8, 'No runs yet.');
      notice('');
    } catch (error) {
      if (!refused) notice('Could not refresh (' + error.message + '); retrying.');
    }
  }

  function followRun(runId) {
    const log = document.getElementById('log');
    const runUrl = 'api/runs/' + encodeURIComponent(runId);
    let kept = 0;
    let asked = 0;
    let shown = 0;
    // Bytes of the log shown so far: a stream that breaks off is asked again from there (a run
    // log is only appended to), with one decoder for all of them, as a character can be cut
    // between two.
    let received = 0;
    const decoder = new TextDecoder();
    let started = false;
    // Set once a stream has ended with the run and the record says how it ended. Until then a
    // final record is not shown: it can come before the stream's last bytes (the server sends
    // what was appended every 200 ms), and a final badge must come with the whole log.
    let finished = false;
    let stream;
    let retry = 0;

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

    async function refreshRecord(final) {
      const ask = ++asked;
      try {
        const { run } = await getJson(runUrl);
        // Answers can overtake each other: never let an older one undo a newer one.
        if (ask < shown || (!final && FINAL.has(run.status))) return run;
        shown = ask;
        document.getElementById('run-status').replaceChildren(badge(run.status));
        const fields = liveFields(run, now());
        for (const node of document.querySelectorAll('[data-field]')) {
          const value = fields[node.dataset.field];
          if (Object.hasOwn(fields, node.dataset.field) && node.textContent !== value) node.textContent = value;
        }
        const next = run.supersededBy || run.retriedBy;
        if (next) {
          const link = document.getElementById('next-run');
          link.setAttribute('href', 'runs/' + encodeURIComponent(next));
          link.textContent = next;
          for (const node of document.querySelectorAll('.next-run')) node.hidden = false;
        }
        if (!refused) notice('');
        return run;
      } catch (error) {
        if (!refused) notice('Could not refresh the run (' + error.message + '); retrying.');
        return undefined;
      }
    }

    /**
     * Streams the log from the bytes already shown, until the run ends. A hidden page holds no
     * stream open (a browser has only six connections to a server over HTTP/1.1, and each open
     * run page would hold one): it goes on when the page shows again.
     */
    async function follow() {
      clearTimeout(retry);
      if (finished || refused || stream || document.hidden) return;
      const controller = new AbortController();
      stream = controller;
      const poll = setInterval(() => refreshRecord(false), 2000);
      let ended = false;
      try {
        const response = await fetch(runUrl + '/log?follow=1&offset=' + received, { credentials: 'same-origin', cache: 'no-store', signal: controller.signal });
        if (response.status === 404) {
          finished = true;
          notice('This run no longer exists: finished runs beyond keep_runs are deleted.');
          return;
        }
        refuse(response.status);
        if (!response.ok || !response.body) throw new Error('the log answered HTTP ' + response.status);
        // What was shown already is left out: a proxy that drops the query string sends it all again.
        let skip = Math.max(0, received - (Number(response.headers.get('x-log-offset')) || 0));
        const reader = response.body.getReader();
        for (;;) {
          const { done, value: read } = await reader.read();
          if (done) break;
          const value = read.subarray(Math.min(skip, read.length));
          skip -= read.length - value.length;
          if (value.length === 0) continue;
          received += value.length;
          const text = decoder.decode(value, { stream: true });
          if (text && !started) {
            // The first output: the run has started, so its badge should say so now.
            started = true;
            log.textContent = '';
            refreshRecord(false);
          }
          append(text);
        }
        ended = true;
      } catch (error) {
        if (!controller.signal.aborted && !refused) notice('The log stream broke off (' + error.message + '); reconnecting.');
      } finally {
        clearInterval(poll);
        stream = undefined;
      }
      if (ended) {
        const run = await refreshRecord(true);
        if (run && FINAL.has(run.status)) {
          finished = true;
          append(decoder.decode());
          if (!started) log.textContent = run.startedAt ? '(the log is empty)' : '(no log: this run never started)';
          return;
        }
      }
      if (!finished) retry = setTimeout(follow, 2000);
    }

    document.addEventListener('visibilitychange', () => (document.hidden ? stream?.abort() : follow()));
    follow();
  }

  const page = document.body.dataset.page;
  if (page === 'index') every(REFRESH_MS, refreshIndex);
  if (page === 'run') followRun(document.body.dataset.runId);
})();
`;
