// osprey web console. Plain ES module, no dependencies, same-origin calls
// only. The DOM is built with textContent and never from markup, so names and
// error messages from the cluster cannot inject markup.
'use strict';

const API = '/api/storage/v0';
const KEY = 'osprey.apiKey'; // sessionStorage only: gone when the tab closes
const $ = (sel) => document.querySelector(sel);

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmtBytes(n) {
  if (n === undefined || n === null) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + u[i];
}

function fmtTime(s) {
  if (!s) return '';
  const d = new Date(s);
  if (isNaN(d)) return s;
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function badge(text, cls) { return el('span', { class: 'badge ' + (cls || text) }, text); }

let statusTimer;
function say(msg, bad = false) {
  const s = $('#status');
  s.textContent = msg;
  s.classList.toggle('bad', bad);
  clearTimeout(statusTimer);
  if (!bad) statusTimer = setTimeout(() => { s.textContent = ''; }, 6000);
}

function fill(tbody, rows, cols, emptyText) {
  tbody.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { class: 'empty', colspan: cols }, emptyText))]));
}

// ---------- API access and auth ----------

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function authHeaders() {
  const k = sessionStorage.getItem(KEY);
  return k ? { Authorization: 'Bearer ' + k } : {};
}

async function api(method, path, body) {
  const opts = { method, headers: { ...authHeaders() }, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let env = null;
  try { env = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) {
    const msg = (env && env.message) || resp.statusText || 'request failed';
    if (resp.status === 401 || (resp.status === 403 && /unknown API key/i.test(msg))) needKey(msg);
    throw new APIError(resp.status, msg);
  }
  return env ? env.data : null;
}

let authed = false;

function needKey(msg) {
  authed = false;
  if (sessionStorage.getItem(KEY)) {
    sessionStorage.removeItem(KEY);
    $('#auth-error').textContent = msg;
  }
  document.querySelectorAll('.view').forEach((v) => { v.hidden = true; });
  $('#auth').hidden = false;
  $('#auth-key').focus();
}

async function checkAuth() {
  try {
    const info = await api('GET', '/console/info');
    authed = true;
    $('#auth').hidden = true;
    $('#forget-key').hidden = !sessionStorage.getItem(KEY);
    consoleInfo = info;
    return true;
  } catch (e) {
    if (e.status === 403 && /protected mode/.test(e.message)) {
      // No API keys, and this browser is not on the node's loopback: a
      // key cannot help. Say so instead of asking for one.
      $('#auth').hidden = false;
      $('#auth-form').hidden = true;
      $('#auth-h').textContent = 'Console not available from this address';
      $('#auth-error').textContent = e.message + '. Open the console on the node itself ' +
        '(e.g. through an SSH tunnel), or configure API keys.';
    } else if (e.status !== 401) {
      say('cannot reach the node: ' + e.message, true);
    }
    return false;
  }
}

let consoleInfo = {};

// ---------- navigation ----------

const views = {};
let current = null;

function show(name) {
  if (!views[name]) name = 'cluster';
  document.querySelectorAll('.tabs a').forEach((a) => {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  if (!authed) return;
  document.querySelectorAll('.view').forEach((v) => { v.hidden = v.id !== 'view-' + name; });
  if (current && current !== views[name] && current.leave) current.leave();
  current = views[name];
  current.enter();
}

function poll(fn, ms) {
  let timer = null;
  let stopped = true;
  const tick = async () => {
    try { await fn(); } catch (e) { if (e.status !== 401) say(e.message, true); }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  return {
    start() { if (stopped) { stopped = false; tick(); } },
    stop() { stopped = true; clearTimeout(timer); },
    now() { return fn(); },
  };
}

// ---------- Cluster ----------

function card(k, v, cls) {
  return el('div', { class: 'card ' + (cls || '') }, el('div', { class: 'k' }, k), el('div', { class: 'v' }, v));
}

async function refreshCluster() {
  const [st, nodes, ready] = await Promise.all([
    api('GET', '/cluster/status'),
    api('GET', '/cluster/nodes'),
    fetch('/readyz', { cache: 'no-store' }).then((r) => r.json()).catch(() => null),
  ]);
  $('#node-label').textContent = 'node ' + st.id + (consoleInfo.version ? ' · ' + consoleInfo.version : '');
  const storage = st.storage || {};
  const under = storage.under_protected || 0;
  const tasks = storage.tasks || {};
  const dead = Object.entries(tasks).filter(([k]) => k.endsWith('_dead')).reduce((a, [, v]) => a + v, 0);
  const queued = Object.values(tasks).reduce((a, v) => a + v, 0);
  let backend = storage.backend || '';
  let backendCls = '';
  const checks = ready && ready.data && ready.data.checks;
  if (checks && checks.backend) {
    backend = checks.backend;
    backendCls = /unreachable/.test(checks.backend) ? 'bad' : 'good';
  }
  const reachable = nodes.filter((n) => n.reachable).length;
  // protection says what costs redundancy now: copies below the policy,
  // and members that are down or unreachable (their copies do not count).
  function protection(under, degraded) {
    const parts = [];
    if (under) parts.push(under + ' under-protected');
    for (const d of degraded) {
      parts.push(d.id + (d.down ? ' down' : ' unreachable') + (d.repair_at && !d.down ? ', repair at ' + new Date(d.repair_at).toLocaleTimeString() : ''));
    }
    return parts.length ? parts.join('; ') : 'full';
  }
  $('#cluster-cards').replaceChildren(
    card('Leader', st.leader.id || 'none', st.leader.id ? 'good' : 'bad'),
    card('Members reachable', reachable + ' / ' + nodes.length, reachable === nodes.length ? 'good' : 'bad'),
    card('Term', st.term),
    card('Applied index', st.applied_index + ' / ' + st.commit_index),
    card('Protection', protection(under, storage.degraded || []), under === 0 && !(storage.degraded || []).length ? 'good' : 'bad'),
    card('Redundancy', storage.redundancy || ''),
    card('Backend', backend, backendCls),
    card('Files', storage.files !== undefined ? storage.files : ''),
    card('Tasks queued', queued + (dead ? ' (' + dead + ' dead)' : ''), dead ? 'bad' : ''),
    card('This node', st.id + ' · ' + st.state),
  );
  const rows = nodes.map((n) => el('tr', { 'data-node': n.id },
    el('th', { scope: 'row' }, n.id),
    el('td', {}, n.leader ? badge('leader') : badge(n.suffrage === 'Voter' ? 'follower' : (n.suffrage || '').toLowerCase(), 'member')),
    el('td', { title: n.error || '' }, n.reachable ? badge('yes', 'ok') : badge('no', 'bad'), n.error ? ' ' + n.error : ''),
    el('td', { class: 'num opt' }, n.reachable ? n.rtt_ms.toFixed(1) + ' ms' : '–'),
    el('td', { class: 'mono' }, n.http_addr || ''),
    el('td', { class: 'mono opt' }, n.raft_addr || ''),
    el('td', { class: 'num opt' }, n.worker_id === null || n.worker_id === undefined ? '' : n.worker_id),
  ));
  fill($('#members tbody'), rows, 7, 'no members');
  $('#cluster-updated').textContent = 'Updated ' + new Date().toLocaleTimeString() + ' · refreshes every 2 s';
}

const clusterPoll = poll(refreshCluster, 2000);
views.cluster = { enter: () => clusterPoll.start(), leave: () => clusterPoll.stop() };

// ---------- Files ----------

const files = { cursors: [''], page: 0, next: '', query: '' };

function fileRow(f) {
  return el('tr', { 'data-uid': f.uid },
    el('td', { class: 'name' }, f.name),
    el('td', { class: 'mono' }, f.uid),
    el('td', { class: 'num' }, fmtBytes(f.size)),
    el('td', {}, badge(f.state)),
    el('td', { class: 'opt' }, f.bucket),
    el('td', { class: 'num opt' }, fmtTime(f.created_at)),
    el('td', {}, el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'small secondary', 'data-action': 'detail', 'aria-label': 'Details of ' + f.name, onclick: () => openDetail(f.uid) }, 'Details'),
      el('button', { type: 'button', class: 'small secondary', 'data-action': 'download', disabled: f.state === 'uploading' || f.state === 'failed', 'aria-label': 'Download ' + f.name, onclick: () => download(f) }, 'Download'),
      el('button', { type: 'button', class: 'small danger', 'data-action': 'delete', 'aria-label': 'Delete ' + f.name, onclick: () => confirmDelete(f) }, 'Delete'),
    )),
  );
}

async function loadFiles() {
  const q = files.query;
  const cursor = files.cursors[files.page];
  let items = [];
  let next = '';
  if (q && /^\d+$/.test(q) && files.page === 0) {
    try { items = [await api('GET', API + '/object?uid=' + encodeURIComponent(q))]; } catch (e) { if (e.status !== 404) throw e; }
  }
  if (q && items.length === 0) {
    const r = await api('GET', API + '/objects/search?limit=50&prefix=' + encodeURIComponent(q) + (cursor ? '&cursor=' + cursor : ''));
    items = r.items; next = r.next_cursor;
  } else if (!q) {
    const r = await api('GET', API + '/objects?limit=50' + (cursor ? '&cursor=' + cursor : ''));
    items = r.items; next = r.next_cursor;
  }
  files.next = next;
  fill($('#files tbody'), items.map(fileRow), 7, q ? 'no file matches “' + q + '”' : 'no files yet');
  $('#files-prev').disabled = files.page === 0;
  $('#files-next').disabled = !next;
  $('#files-page').textContent = 'page ' + (files.page + 1) + (q ? ' · search “' + q + '”' : '');
}

function holderBadge(h) {
  return el('span', { class: 'badge ' + (h.down || h.removed ? 'bad' : 'ok'), title: h.http_addr || '' },
    h.id + (h.shard ? ' shard ' + h.shard : '') + (h.down ? ' (down)' : '') + (h.removed ? ' (removed)' : ''));
}

async function openDetail(uid) {
  const d = await api('GET', API + '/object/detail?uid=' + encodeURIComponent(uid));
  const info = [
    ['Name', d.name], ['uid', d.uid], ['Size', fmtBytes(d.size) + ' (' + d.size + ' bytes)'], ['State', d.state],
    ['md5', d.md5 || '(not yet known)'], ['Bucket', d.bucket], ['Content type', d.content_type],
    ['Location', d.location], ['Content id', d.content || ''], ['References', d.refs],
    ['Verified', d.verified ? 'yes' : 'no'], ['Created', fmtTime(d.created_at)], ['Updated', fmtTime(d.updated_at)],
  ];
  if (d.tier) {
    const holders = (d.tier.holders || []).flatMap((h) => [' ', holderBadge(h)]);
    info.push(['Backend object', el('span', {}, el('span', { class: 'mono' }, d.tier.bucket + '/' + d.tier.key),
      ...(holders.length ? [' copies on', ...holders] : [' (shared backend)']))]);
  }
  $('#detail-info').replaceChildren(...info.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  const rows = (d.parts || []).map((c) => el('tr', {},
    el('td', { class: 'num' }, c.num),
    el('td', { class: 'num' }, fmtBytes(c.size)),
    el('td', {}, c.layout),
    el('td', {}, ...c.holders.flatMap((h) => [holderBadge(h), ' '])),
    el('td', { class: 'mono opt' }, c.md5),
  ));
  fill($('#detail-chunks tbody'), rows, 5, d.tier ? 'staged chunks collected: the file is in the backend' : 'no chunks');
  $('#detail-h').textContent = 'File ' + d.name;
  $('#detail').hidden = false;
  $('#detail').scrollIntoView({ block: 'nearest' });
  $('#detail-close').focus();
}

async function download(f) {
  const [link] = await api('POST', API + '/link/download', { uid: [f.uid], expire: 600 });
  if (link.error) { say(f.name + ': ' + link.error, true); return; }
  // A signed, short-lived link: the API key is not in it.
  const a = el('a', { href: link.url, download: f.name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  say('downloading ' + f.name);
}

function confirmDelete(f) {
  const dlg = $('#confirm');
  $('#confirm-text').textContent = 'Delete “' + f.name + '” (uid ' + f.uid + ')? Its bytes are removed once no other uid shares them.';
  const yes = $('#confirm-yes');
  const no = $('#confirm-no');
  const done = () => { yes.onclick = null; no.onclick = null; dlg.close(); };
  yes.onclick = async () => {
    done();
    try {
      await api('DELETE', API + '/object?uid=' + encodeURIComponent(f.uid));
      say('deleted ' + f.name);
      $('#detail').hidden = true;
      await loadFiles();
    } catch (e) { say('delete ' + f.name + ': ' + e.message, true); }
  };
  no.onclick = done;
  dlg.showModal();
  no.focus();
}

views.files = { enter: () => loadFiles().catch((e) => say(e.message, true)) };

// ---------- Upload ----------

let md5Worker = null;
let md5Seq = 0;
const md5Jobs = new Map();

function hashFile(file, chunkSize, onProgress) {
  if (!md5Worker) {
    md5Worker = new Worker('md5worker.js');
    md5Worker.onmessage = (ev) => {
      const job = md5Jobs.get(ev.data.id);
      if (!job) return;
      if (ev.data.progress !== undefined) { job.onProgress(ev.data.progress); return; }
      md5Jobs.delete(ev.data.id);
      if (ev.data.error) job.reject(new Error('md5: ' + ev.data.error));
      else job.resolve(ev.data);
    };
  }
  return new Promise((resolve, reject) => {
    const id = ++md5Seq;
    md5Jobs.set(id, { resolve, reject, onProgress });
    md5Worker.postMessage({ id, file, chunkSize });
  });
}

// put sends body with XMLHttpRequest, the only browser API that reports
// upload progress.
function put(url, body, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', url);
    x.setRequestHeader('Content-Type', 'application/octet-stream');
    x.upload.onprogress = (e) => onProgress(e.loaded);
    x.onload = () => {
      let msg = x.statusText;
      try { msg = JSON.parse(x.responseText).message || msg; } catch (_) { /* keep */ }
      if (x.status >= 200 && x.status < 300) resolve();
      else reject(new APIError(x.status, msg));
    };
    x.onerror = () => reject(new APIError(0, 'network error'));
    x.send(body);
  });
}

// Links of unfinished uploads, so a retry (or a reload in this tab)
// continues where it stopped. Signed upload links carry no API key.
function resumeKey(file, md5, chunkSize) { return 'osprey.upload.' + [file.name, file.size, file.lastModified, md5, chunkSize].join('|'); }

class Upload {
  constructor(file) {
    this.file = file;
    this.bar = el('progress', { max: 100, value: 0, 'aria-label': 'Upload progress of ' + file.name });
    this.pct = el('span', { class: 'pct' }, '0%');
    this.state = el('span', { class: 'state' }, 'queued');
    this.retryBtn = el('button', { type: 'button', class: 'small secondary', hidden: true, onclick: () => this.run() }, 'Retry');
    this.li = el('li', { class: 'upload', 'data-name': file.name },
      el('div', { class: 'head' }, el('span', { class: 'name' }, file.name), el('span', { class: 'muted' }, fmtBytes(file.size))),
      this.bar,
      el('div', { class: 'head' }, this.state, el('span', {}, this.pct, ' ', this.retryBtn)));
  }

  progress(frac, text) {
    const p = Math.floor(frac * 100);
    this.bar.value = p;
    this.pct.textContent = p + '%';
    if (text) this.state.textContent = text;
  }

  async run() {
    this.retryBtn.hidden = true;
    this.li.className = 'upload';
    const chunkSize = Number($('#chunk-size').value);
    const parallel = Math.max(1, Math.min(8, Number($('#parallel').value) || 3));
    try {
      this.progress(0, 'computing md5…');
      const sums = await hashFile(this.file, chunkSize, (f) => this.progress(0, 'computing md5… ' + Math.floor(f * 100) + '%'));
      const [known] = await api('POST', API + '/resume', { data: [{ md5: sums.md5, path: this.file.name }] });
      if (known.uid) {
        this.finish(known.uid, 'stored instantly: the cluster already had this content');
        return;
      }
      const rk = resumeKey(this.file, sums.md5, chunkSize);
      let link = JSON.parse(sessionStorage.getItem(rk) || 'null');
      let have = new Set();
      if (link) {
        try {
          have = new Set(await api('GET', API + '/checkpoint?uid=' + link.uid));
        } catch (e) {
          if (e.status !== 404) throw e;
          link = null;
        }
      }
      if (!link) {
        const [l] = await api('POST', API + '/link/upload', { filePath: [this.file.name] });
        link = { uid: l.uid, single: l.url.single, upload: l.url.multi.upload, merge: l.url.multi.merge };
        sessionStorage.setItem(rk, JSON.stringify(link));
      }
      this.uid = link.uid;
      if (this.file.size <= chunkSize) {
        this.progress(0, 'uploading');
        await put(link.single + '&md5=' + sums.md5, this.file, (n) => this.progress(this.file.size ? n / this.file.size : 1));
      } else {
        await this.chunks(link, sums, chunkSize, parallel, have);
        this.progress(1, 'merging');
        await api('PUT', link.merge + '&md5=' + sums.md5 + '&num=' + sums.chunks.length + '&size=' + this.file.size);
      }
      sessionStorage.removeItem(rk);
      this.finish(link.uid, have.size ? 'uploaded (resumed: ' + have.size + ' chunks were already stored)' : 'uploaded');
    } catch (e) {
      this.li.className = 'upload failed';
      this.state.textContent = 'failed: ' + e.message;
      this.retryBtn.hidden = false;
      if (e.status !== 401) say(this.file.name + ': ' + e.message, true);
    }
  }

  async chunks(link, sums, chunkSize, parallel, have) {
    const total = this.file.size;
    const inflight = new Map();
    let done = 0;
    for (const n of have) done += Math.min(chunkSize, total - (n - 1) * chunkSize);
    const todo = [];
    for (let n = 1; n <= sums.chunks.length; n++) if (!have.has(n)) todo.push(n);
    const report = () => {
      let sent = done;
      for (const v of inflight.values()) sent += v;
      this.progress(sent / total, 'uploading ' + (sums.chunks.length - todo.length - inflight.size) + ' / ' + sums.chunks.length + ' chunks');
    };
    report();
    const lane = async () => {
      while (todo.length) {
        const n = todo.shift();
        const start = (n - 1) * chunkSize;
        const blob = this.file.slice(start, Math.min(start + chunkSize, total));
        const url = link.upload + '&md5=' + sums.chunks[n - 1] + '&chunkNum=' + n;
        for (let attempt = 1; ; attempt++) {
          inflight.set(n, 0);
          try {
            await put(url, blob, (b) => { inflight.set(n, b); report(); });
            break;
          } catch (e) {
            inflight.delete(n);
            // 4xx other than a conflict is final; network errors and 5xx
            // are retried a few times with a growing pause.
            if (attempt >= 4 || (e.status >= 400 && e.status < 500)) throw e;
            await new Promise((r) => setTimeout(r, 400 * attempt));
          }
        }
        inflight.delete(n);
        done += blob.size;
        report();
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, todo.length || 1) }, lane));
  }

  finish(uid, text) {
    this.li.className = 'upload done';
    this.li.dataset.uid = uid;
    this.progress(1, text + ' · uid ');
    this.state.append(el('a', { href: '#files', class: 'mono', onclick: () => { $('#search').value = uid; files.query = uid; files.page = 0; files.cursors = ['']; } }, uid));
  }
}

const uploadQueue = [];
let uploading = false;

function addFiles(list) {
  for (const f of list) {
    const u = new Upload(f);
    $('#uploads').prepend(u.li);
    uploadQueue.push(u);
  }
  drainUploads();
}

async function drainUploads() {
  if (uploading) return;
  uploading = true;
  try {
    while (uploadQueue.length) await uploadQueue.shift().run();
  } finally { uploading = false; }
}

views.upload = { enter: () => {} };

// ---------- Tasks ----------

async function refreshTasks() {
  const state = $('#task-state').value;
  const [tasks, all] = await Promise.all([
    api('GET', '/tasks' + (state ? '?state=' + state : '')),
    state ? api('GET', '/tasks') : null,
  ]);
  const counts = {};
  for (const t of all || tasks) counts[t.state] = (counts[t.state] || 0) + 1;
  $('#task-counts').textContent = ['pending', 'leased', 'dead'].map((s) => (counts[s] || 0) + ' ' + s).join(' · ');
  const rows = tasks.map((t) => el('tr', { 'data-task': t.id, 'data-state': t.state },
    el('td', { class: 'num' }, t.id),
    el('td', {}, t.type),
    el('td', {}, badge(t.state)),
    el('td', { class: 'num' }, t.attempts),
    el('td', { class: 'mono opt' }, t.target),
    el('td', { class: 'opt' }, t.state === 'leased' ? t.lease_holder + ' until ' + fmtTime(t.lease_expiry) : fmtTime(t.next_attempt)),
    el('td', { class: 'err' }, t.last_error || ''),
    el('td', {}, t.state === 'dead'
      ? el('button', { type: 'button', class: 'small', 'data-action': 'retry', 'aria-label': 'Retry task ' + t.id, onclick: (ev) => retryTask(t, ev.target) }, 'Retry')
      : ''),
  ));
  fill($('#tasks tbody'), rows, 8, state ? 'no ' + state + ' tasks' : 'the task queue is empty');
}

async function retryTask(t, btn) {
  btn.disabled = true;
  try {
    await api('POST', '/tasks/' + t.id + '/retry');
    say('task ' + t.id + ' (' + t.type + ') queued again');
    await refreshTasks();
  } catch (e) {
    btn.disabled = false;
    say('retry task ' + t.id + ': ' + e.message, true);
  }
}

const tasksPoll = poll(refreshTasks, 3000);
views.tasks = { enter: () => tasksPoll.start(), leave: () => tasksPoll.stop() };

// ---------- Chaos reports ----------

async function loadReports() {
  const r = await api('GET', '/console/reports');
  $('#reports-dir').textContent = r.runs.length
    ? 'Runs of the chaos harness found in ' + r.dir + ' (newest first). Links are valid for 10 minutes.'
    : 'No chaos-harness reports found' + (r.dir ? ' in ' + r.dir : '') + '. Run scripts/jepsen.sh on this machine to produce some.';
  $('#reports').replaceChildren(...r.runs.map((run) => el('li', { 'data-run': run.name },
    el('strong', {}, run.name), ' ', el('span', { class: 'muted' }, fmtTime(run.modified)), ' — ',
    ...run.files.flatMap((f, i) => [i ? ' · ' : '', el('a', { href: f.url, target: '_blank', rel: 'noopener noreferrer' }, f.name)]),
  )));
}

// Report links are signed for 10 minutes: refresh them while the view is open.
const reportsPoll = poll(loadReports, 60000);
views.reports = { enter: () => reportsPoll.start(), leave: () => reportsPoll.stop() };

// ---------- wiring ----------

function wire() {
  $('#auth-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const k = $('#auth-key').value.trim();
    $('#auth-key').value = '';
    sessionStorage.setItem(KEY, k);
    $('#auth-error').textContent = '';
    if (await checkAuth()) show(location.hash.slice(1));
  });
  $('#forget-key').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
  window.addEventListener('hashchange', () => show(location.hash.slice(1)));

  $('#search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    files.query = $('#search').value.trim();
    files.page = 0; files.cursors = [''];
    loadFiles().catch((e) => say(e.message, true));
  });
  $('#search-clear').addEventListener('click', () => {
    $('#search').value = ''; files.query = ''; files.page = 0; files.cursors = [''];
    loadFiles().catch((e) => say(e.message, true));
  });
  $('#files-next').addEventListener('click', () => {
    if (!files.next) return;
    files.cursors[files.page + 1] = files.next; files.page++;
    loadFiles().catch((e) => say(e.message, true));
  });
  $('#files-prev').addEventListener('click', () => {
    if (files.page === 0) return;
    files.page--;
    loadFiles().catch((e) => say(e.message, true));
  });
  $('#detail-close').addEventListener('click', () => { $('#detail').hidden = true; });
  $('#confirm').addEventListener('cancel', () => { $('#confirm-yes').onclick = null; });

  $('#file-input').addEventListener('change', (ev) => { addFiles(ev.target.files); ev.target.value = ''; });
  const drop = $('#drop');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => { ev.preventDefault(); drop.classList.remove('over'); addFiles(ev.dataTransfer.files); });

  $('#task-state').addEventListener('change', () => tasksPoll.now().catch((e) => say(e.message, true)));
}

wire();
if (await checkAuth()) show(location.hash.slice(1));
