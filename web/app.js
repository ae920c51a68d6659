// Kennel's admin page: plain JavaScript, no framework, no build step.
//
// One file, in this order: DOM helpers, the API client (session cookie +
// X-CSRF-Token), messages and the reason dialog, formatting, charts (inline
// SVG), the views (overview, streams, models, one model, jobs, one job,
// deployments, API keys), and the router that runs the current view and
// refreshes its live parts every 2 s.
//
// Nothing here builds HTML from strings: every node is made with
// document.createElement, so text from the server is never markup. The page's
// CSP (default-src 'self'; no inline script or style) holds because styling
// is by class only.
'use strict';

(() => {
  const POLL_MS = 2000;
  const LIVE_METRICS_MAX_AGE_S = 10;

  // ---------------------------------------------------------------------------
  // DOM helpers

  // h('tag.class1.class2', {attr: value, onclick: fn, text: '...'}, ...children)
  function h(spec, attrs, ...children) {
    const [tag, ...classes] = spec.split('.');
    const el = document.createElement(tag || 'div');
    if (classes.length) el.className = classes.join(' ');
    applyAttrs(el, attrs);
    append(el, children);
    return el;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    applyAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function applyAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') el.textContent = String(v);
      else if (k === 'class') el.setAttribute('class', (el.getAttribute('class') ? el.getAttribute('class') + ' ' : '') + v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value' && 'value' in el) el.value = v;
      else if (k === 'checked' || k === 'selected' || k === 'disabled') el[k] = Boolean(v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  function replace(el, ...children) {
    el.replaceChildren();
    append(el, children);
    return el;
  }

  const $ = (sel, root = document) => root.querySelector(sel);

  // A table in a box that scrolls sideways on its own (focusable, so the
  // keyboard can scroll it too). A header {actions: true} marks the column of
  // buttons, which stays in view at the box's right edge.
  function table(headers, rows, opts = {}) {
    const head = h('thead', null, h('tr', null, headers.map((c) => {
      const label = typeof c === 'string' ? c : c.label;
      return h('th', { class: c.actions ? 'cell-actions' : c.num ? 'num' : null, scope: 'col' },
        label || (c.actions ? h('span.visually-hidden', null, 'Actions') : label));
    })));
    const body = h('tbody', null, rows);
    const named = headers.map((c) => (typeof c === 'string' ? c : c.label)).filter(Boolean);
    return h('div.table-wrap', { 'data-scrolls': opts.label || `Table: ${named.slice(0, 3).join(', ')}` },
      h('table', { class: opts.class || null }, head, body));
  }

  const ACTIONS = { label: '', actions: true };
  // A box that may scroll sideways (a curl example on a phone).
  const SCROLLS = { 'data-scrolls': '' };

  // A box that may scroll (a table, the job log, a curl example) is a tab
  // stop, and a region named by its data-scrolls, while it does scroll, so
  // the keyboard can scroll it; one that fits was a stop that did nothing.
  // Looked at whenever the page's content or width changes.
  function scrollStops() {
    for (const el of document.querySelectorAll('[data-scrolls]')) {
      const scrolls = el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1;
      if (scrolls || el === document.activeElement) {
        el.setAttribute('tabindex', '0');
        if (el.dataset.scrolls) {
          el.setAttribute('role', 'region');
          el.setAttribute('aria-label', el.dataset.scrolls);
        }
      } else {
        for (const a of ['tabindex', 'role', 'aria-label']) el.removeAttribute(a);
      }
    }
  }
  new MutationObserver(scrollStops).observe(document.body, { childList: true, subtree: true });
  window.addEventListener('resize', scrollStops);
  document.addEventListener('toggle', scrollStops, true);  // a <details> opened in a table

  // A region re-rendered only when its data changed, so a refresh every 2 s
  // does not replace buttons under the pointer or reset scroll positions.
  // When it is redrawn, keyboard focus inside it moves to the new copy of
  // the focused control (it fell to <body>, and a keyboard user could not
  // reach a running job's Cancel between two refreshes).
  function liveRegion(el) {
    let last;
    return (data, render) => {
      const key = JSON.stringify(data);
      if (key === last) return;
      last = key;
      keepingFocus(el, () => replace(el, render(data)));
    };
  }

  // Runs draw(), which redraws el; keyboard focus inside el moves to the new
  // copy of the focused control.
  function keepingFocus(el, draw) {
    const mark = el.contains(document.activeElement) ? focusMark(el) : null;
    draw();
    if (mark && !el.contains(document.activeElement)) refocusIn(el, mark);
  }

  // ---------------------------------------------------------------------------
  // The API: JSON in and out; the session cookie rides along and every
  // state-changing request carries the session's CSRF token.

  class ApiError extends Error {
    constructor(status, body, method, path) {
      const e = (body && body.error) || {};
      super(e.message || (status ? `HTTP ${status}` : 'no answer'));
      this.status = status;
      this.code = e.code || (status ? `http_${status}` : 'network');
      this.field = e.field;
      this.item = e.item;
      this.details = Array.isArray(e.details) ? e.details : [];
      this.method = method;
      this.path = path;
      this.body = body;
    }
  }

  const session = { user: null, csrf: null };

  // `headers`: more request headers, e.g. If-Match with the ETag of what a
  // person was shown, so that a change made meanwhile by someone else (or
  // the supervisor) refuses the action (412) instead of being overwritten.
  async function api(method, path, body, headers, retried) {
    // X-Kennel-Page: a 401 then offers no Basic challenge, which would make
    // the browser prompt for a password over the page's own sign-in.
    const opts = { method, headers: { Accept: 'application/json', 'X-Kennel-Page': '1', ...headers }, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    if (method !== 'GET' && session.csrf) opts.headers['X-CSRF-Token'] = session.csrf;
    let r;
    try {
      r = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, { error: { code: 'network', message: `Kennel did not answer (${e.message}). Is the server running?` } }, method, path);
    }
    const text = await r.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    // Signed in again in another tab: this page's CSRF token is the old
    // session's, and every write failed until a reload. The session's own
    // token is read again and the write sent once more, if the same person
    // is signed in; another person is told, and nothing is sent as them.
    if (r.status === 403 && method !== 'GET' && !retried && data && data.error &&
        data.error.field === 'X-CSRF-Token' && session.user) {
      let now = null;
      try { now = await api('GET', '/v1/auth/session'); } catch (e) { now = null; }
      if (now && now.user === session.user && now.csrf_token && now.csrf_token !== session.csrf) {
        session.csrf = now.csrf_token;
        return api(method, path, body, headers, true);
      }
      if (now && now.user !== session.user) {
        signedOut(`${now.user} signed in on this browser (in another tab): sign in again here to act as them. Nothing was sent.`);
      }
    }
    if (!r.ok) {
      const err = new ApiError(r.status, data, method, path);
      if (!data || !data.error) err.message = `${method} ${path} answered HTTP ${r.status}`;
      if (r.status === 401 && !path.startsWith('/v1/auth/') && session.user) {
        signedOut('Your session has ended. Sign in again.');
      }
      throw err;
    }
    return data;
  }
  const get = (path) => api('GET', path);
  const enc = encodeURIComponent;

  // ---------------------------------------------------------------------------
  // Messages: error boxes in place, flash messages for the results of actions.

  function errorBox(err, title) {
    if (!(err instanceof ApiError)) {
      return h('div.alert.error', { role: 'alert' }, h('div.title', null, title || 'Something went wrong'),
        h('div', null, String(err && err.message ? err.message : err)));
    }
    const meta = [];
    if (err.status) meta.push(`HTTP ${err.status}`);
    if (err.code) meta.push(err.code);
    return h('div.alert.error', { role: 'alert' },
      title ? h('div.title', null, title) : null,
      h('div', null, err.message, err.field && !err.details.length ? [' (field ', h('code', null, err.field), ')'] : null),
      err.details.length ? fieldErrorList(err.details) : null,
      h('div.small', null, meta.join(' · '), err.path ? ` · ${err.method} ${err.path}` : ''));
  }

  function fieldErrorList(details) {
    return h('ul.field-errors', null, details.map((d) =>
      h('li', null, h('code', null, d.field || '(the whole body)'), ': ', d.message)));
  }

  function flash(message, kind = 'success') {
    const box = $('#flash');
    const close = h('button', { type: 'button', 'aria-label': 'Dismiss', text: '×' });
    const el = h(`div.alert.${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, h('span', null, message), close);
    close.addEventListener('click', () => el.remove());
    box.append(el);
    while (box.children.length > 4) box.firstElementChild.remove();
    if (kind !== 'error') setTimeout(() => el.remove(), 8000);
  }

  function flashError(err, what) {
    // Signed out meanwhile (a 401 shows the sign-in form): the action's
    // failure is that, and the form says so.
    if (!session.user) return;
    const msg = err instanceof ApiError && err.status === 412
      ? `${what ? what + ': ' : ''}not done, it changed while you looked: ${err.message}. The page now shows it as it is.`
      : err instanceof ApiError
      ? `${what ? what + ': ' : ''}${err.message}${err.field ? ` (${err.field})` : ''}`
      : `${what ? what + ': ' : ''}${err && err.message ? err.message : err}`;
    flash(msg, 'error');
  }

  // The reason dialog: every action that changes what serves says why.
  // Resolves to the reason (or '' when none was asked for), or null if cancelled.
  // `run`: the action itself, sent from the open dialog; a failure is said
  // in it, and the reason typed stays (it closed, the reason lost, with a
  // toast that went away). Resolves to { result } then. A 412 (changed
  // while looked at) closes it: the page shows the change.
  function ask({ title, text, confirm = 'Confirm', reason = true, danger = false, placeholder, run }) {
    const dlg = $('#dialog');
    if (dlg.open) return Promise.resolve(null); // one question at a time
    const area = $('#dialog-reason');
    const ok = $('#dialog-ok');
    const errBox = $('#dialog-error');
    $('#dialog-title').textContent = title;
    $('#dialog-text').textContent = text || '';
    $('#dialog-reason-box').hidden = !reason;
    area.value = '';
    area.placeholder = placeholder || 'Why?';
    errBox.hidden = true;
    area.removeAttribute('aria-invalid');
    ok.textContent = confirm;
    ok.className = danger ? 'danger' : 'primary';
    return new Promise((resolve) => {
      const form = $('#dialog-form');
      const cancelBtn = $('#dialog-cancel');
      let settled = false;
      const done = (value) => {
        if (settled) return;
        settled = true;
        form.removeEventListener('submit', onSubmit);
        cancelBtn.removeEventListener('click', onCancel);
        dlg.removeEventListener('cancel', onCancel);
        dlg.removeEventListener('close', onClosed);
        ok.disabled = false;
        if (dlg.open) dlg.close();
        resolve(value);
      };
      const refuse = (message) => {
        errBox.textContent = message;
        errBox.hidden = false;
        area.setAttribute('aria-invalid', 'true');
        area.focus();
      };
      const onSubmit = async (ev) => {
        ev.preventDefault();
        if (ok.disabled) return; // sent already, waiting for its answer
        const r = area.value.trim();
        if (reason && !r) { refuse('Say why: every action is recorded with its reason.'); return; }
        // The server's bound is in bytes; the box counts characters.
        const bytes = new TextEncoder().encode(r).length;
        if (reason && bytes > 2000) { refuse(`A reason is at most 2,000 bytes; this one has ${fmtNum(bytes)} (a character may take up to 4).`); return; }
        if (!run) { done(reason ? r : ''); return; }
        ok.disabled = true;
        errBox.hidden = true;
        try {
          done({ result: await run(reason ? r : '') });
        } catch (err) {
          ok.disabled = false;
          if (settled) return;
          if (err instanceof ApiError && err.status === 412) { done({ error: err }); return; }
          errBox.textContent = err instanceof ApiError
            ? `${err.message}${err.field ? ` (${err.field})` : ''}. Nothing was done; send it again, or cancel.`
            : `${err && err.message ? err.message : err}`;
          errBox.hidden = false;
          area.removeAttribute('aria-invalid');
        }
      };
      // Closed by other means (a sign-out shows the sign-in form): cancelled.
      const onClosed = () => done(null);
      const onCancel = (ev) => { if (ev) ev.preventDefault(); done(null); };
      const onKey = (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) form.requestSubmit(); };
      area.onkeydown = onKey;
      form.addEventListener('submit', onSubmit);
      cancelBtn.addEventListener('click', onCancel);
      dlg.addEventListener('cancel', onCancel);
      dlg.addEventListener('close', onClosed);
      dlg.showModal();
      // A destructive action with nothing to type starts on Cancel: two
      // presses of Enter revoked a key.
      (reason ? area : danger ? cancelBtn : ok).focus();
    });
  }

  // Where keyboard focus was before an action: its button is usually drawn
  // anew by the refresh, so focus would fall to <body>. Found again by its
  // row and action (a disable button comes back as enable, and vice versa).
  const ROW_KEYS = ['version', 'model', 'job', 'key', 'arm'];
  const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';
  function focusMark(region) {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const row = el.closest(ROW_KEYS.map((k) => `tr[data-${k}]`).join(', '));
    // Its place among the region's scrolling boxes, or else among its other
    // controls, for one known by nothing else. (A redrawn box is a tab stop
    // only once it is measured, so the two are counted apart.)
    const box = region ? [...region.querySelectorAll('[data-scrolls]')].indexOf(el) : -1;
    const index = region && box < 0 ? controls(region).indexOf(el) : -1;
    return { el, action: el.dataset ? el.dataset.action : null, href: el.getAttribute('href'), row: row ? rowKey(row) : null, index, box };
  }
  const controls = (region) => [...region.querySelectorAll(FOCUSABLE)].filter((e) => !e.hasAttribute('data-scrolls'));
  function scrollBox(region, i) {
    const el = region.querySelectorAll('[data-scrolls]')[i];
    if (el) el.setAttribute('tabindex', '0');
    return el;
  }
  function rowKey(row) {
    for (const k of ROW_KEYS) {
      if (row.dataset[k] !== undefined) return `tr[data-${k}="${CSS.escape(row.dataset[k])}"]`;
    }
    return null;
  }
  // The redrawn copy of a marked control in `region`: the same action in
  // the same row (or its counterpart: a disable button comes back as
  // enable), the same link, the control in the same place, or another in
  // the row. Says whether it found one.
  function refocusIn(region, mark, preventScroll = true) {
    const scope = mark.row ? region.querySelector(mark.row) : region;
    if (!scope) return false;
    const counterpart = { disable: 'enable', enable: 'disable' }[mark.action];
    const act = (a) => scope.querySelector(`[data-action="${CSS.escape(a)}"]:not([disabled])`);
    const target = (mark.action && act(mark.action))
      || (counterpart && act(counterpart))
      || (mark.href && scope.querySelector(`a[href="${CSS.escape(mark.href)}"]`))
      || (mark.box >= 0 && scrollBox(region, mark.box))
      || (!mark.action && !mark.href && mark.index >= 0 && controls(region)[mark.index])
      || (mark.row && (scope.querySelector('button:not([disabled])') || scope.querySelector(FOCUSABLE)));
    if (target) target.focus({ preventScroll });
    return Boolean(target);
  }
  // After a request a button waited for (disabled meanwhile, so focus fell
  // to <body>), focus goes back to it.
  function refocus(btn) {
    if (btn.isConnected && (!document.activeElement || document.activeElement === document.body)) btn.focus();
  }
  // After an action: the control, its redrawn copy, or the page's heading;
  // unless focus is already somewhere (a refresh placed it, or the keyboard
  // moved on while the action's refresh was on its way: it was pulled back).
  function restoreFocus(mark) {
    if (!mark) return;
    const now = document.activeElement;
    if (now && now !== document.body && now !== mark.el) return;
    if (mark.el.isConnected && !mark.el.disabled) { mark.el.focus(); return; }
    if (refocusIn(document, mark, false)) return;
    const heading = document.querySelector('#main h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus();
    }
  }

  // Runs an action: asks, calls, flashes the result, refreshes the view.
  async function act(opts, call, describe) {
    const mark = focusMark();
    const outcome = await ask({ ...opts, run: call });
    if (outcome === null) { restoreFocus(mark); return null; }
    if (outcome.error) {
      flashError(outcome.error, opts.title);
      await refreshNow();
      restoreFocus(mark);
      return null;
    }
    const said = describe ? describe(outcome.result) : 'Done';
    if (said) flash(said);
    await refreshNow();
    restoreFocus(mark);
    return outcome.result;
  }

  // ---------------------------------------------------------------------------
  // Formatting

  function pad(n) { return String(n).padStart(2, '0'); }

  // Times are the browser's local time, so each says its zone ("UTC",
  // "PST", "GMT+1"): the server writes UTC, and a reader comparing with logs
  // must know which. Per date, as daylight saving changes the name.
  const zoneFormat = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' });
  function zoneName(d) {
    const part = zoneFormat.formatToParts(d).find((x) => x.type === 'timeZoneName');
    return part ? part.value : '';
  }

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const zone = zoneName(d);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone ? ` ${zone}` : ''}`;
  }

  function timeEl(iso) {
    if (!iso) return h('span.muted', null, '—');
    return h('time.nowrap', { datetime: iso, title: iso }, fmtTime(iso));
  }

  function fmtAgo(iso) {
    if (!iso) return 'never';
    const t = new Date(iso).getTime();
    if (Number.isNaN(t)) return String(iso);
    const s = Math.round((Date.now() - t) / 1000);
    if (s < 0) return fmtTime(iso);
    if (s < 2) return 'just now';
    if (s < 90) return `${s} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 129600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  function agoEl(iso) {
    if (!iso) return h('span.muted', null, 'never');
    return h('time.nowrap', { datetime: iso, title: fmtTime(iso) }, fmtAgo(iso));
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return '—';
    let s = Math.max(0, Math.round(Number(seconds)));
    if (s === 0 && Number(seconds) > 0) return '< 1 s';  // a quick job took time all the same
    const d = Math.floor(s / 86400); s -= d * 86400;
    const hh = Math.floor(s / 3600); s -= hh * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return `${d} d ${hh} h`;
    if (hh) return `${hh} h ${m} min`;
    if (m) return `${m} min ${s} s`;
    return `${s} s`;
  }

  function between(a, b) {
    if (!a || !b) return null;
    return (new Date(b).getTime() - new Date(a).getTime()) / 1000;
  }

  function fmtNum(v, digits) {
    if (v === null || v === undefined || v === '') return '—';
    const n = Number(v);
    if (!Number.isFinite(n)) return typeof v === 'number' ? String(v) : String(v);
    let out;
    if (Number.isInteger(n) && digits === undefined) out = n.toLocaleString('en-US');
    else if (digits !== undefined) out = n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
    else {
      const abs = Math.abs(n);
      const d = abs >= 1000 ? 1 : abs >= 10 ? 2 : abs >= 1 ? 3 : 4;
      out = n.toLocaleString('en-US', { maximumFractionDigits: d });
    }
    // A tiny negative (an R² of -1e-12) rounds to "-0": that is 0.
    return /^-0(\.0*)?$/.test(out) ? '0' : out;
  }

  // A time below the last digit shown is not "0" (nor a rounded-up 0.01):
  // "< 0.01".
  function fmtMs(v, digits = 2) {
    const n = Number(v);
    const least = 10 ** -digits;
    if (n > 0 && n < least) return `< ${fmtNum(least, digits)}`;
    return fmtNum(v, digits);
  }

  // A value as facts and answers carry it: a number, a class, or a number
  // with its uncertainty ({"lower", "upper"} or {"value", "confidence"}).
  function valueText(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'number') return fmtNum(v, 4);
    if (typeof v !== 'object') return String(v);
    if (typeof v.lower === 'number' && typeof v.upper === 'number' && Object.keys(v).length === 2) {
      // "-3–5" would read as a subtraction: spelled out when a bound is negative.
      return `${fmtNum(v.lower, 4)}${v.lower < 0 || v.upper < 0 ? ' to ' : '–'}${fmtNum(v.upper, 4)}`;
    }
    if (typeof v.value === 'number' && Object.keys(v).every((k) => k === 'value' || k === 'confidence')) {
      return `${fmtNum(v.value, 4)}${v.confidence !== undefined ? ` (confidence ${fmtNum(v.confidence, 4)})` : ''}`;
    }
    return JSON.stringify(v);
  }

  function fmtPct(v) {
    if (v === null || v === undefined || !Number.isFinite(Number(v))) return '—';
    return `${(Number(v) * 100).toLocaleString('en-US', { maximumFractionDigits: 1 })} %`;
  }

  function humanize(key) {
    return String(key).replace(/_/g, ' ').replace(/\bms\b/, '(ms)');
  }

  const GOOD_STATES = ['ok', 'running', 'idle', 'ready', 'serving', 'succeeded', 'passed', 'live', 'active', 'watching', 'enabled', 'stored', 'healthy', 'waiting', 'stable'];
  const WARN_STATES = ['queued', 'candidate', 'degraded', 'busy', 'starting', 'interrupted', 'cancelled', 'rejected', 'full', 'paused', 'backoff', 'shadow', 'shift'];
  const BAD_STATES = ['failed', 'error', 'timed_out', 'stopped', 'down', 'disabled', 'crashed', 'unavailable', 'dead', 'drifted'];

  function badge(state, extra) {
    const s = String(state === null || state === undefined ? '—' : state);
    const l = s.toLowerCase();
    const cls = BAD_STATES.includes(l) ? 'bad' : WARN_STATES.includes(l) ? 'warn' : GOOD_STATES.includes(l) ? 'ok' : '';
    return h(`span.badge${cls ? '.' + cls : ''}${extra ? '.' + extra : ''}`, null, s.replace(/_/g, ' '));
  }

  function jsonText(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'string') return v;
    return JSON.stringify(v);
  }

  // ---------------------------------------------------------------------------
  // Charts: inline SVG, drawn with a few dozen lines.

  // A metric across versions: one line for the model, one dashed for the
  // baseline each version was measured against, the live version ringed.
  function versionChart(points, { metric, higherIsBetter, liveVersion, width = 640 }) {
    const W = width, H = width < 500 ? 240 : 230, L = 56, R = 16, T = width < 500 ? 44 : 30, B = 34;
    const ys = points.flatMap((p) => [p.value, p.baseline]).filter((v) => Number.isFinite(v));
    if (!ys.length) return h('p.muted', null, `No ${metric} values to chart yet.`);
    let lo = Math.min(...ys), hi = Math.max(...ys);
    if (hi - lo < 1e-9) { lo -= Math.abs(lo) * 0.05 + 1e-3; hi += Math.abs(hi) * 0.05 + 1e-3; }
    const padY = (hi - lo) * 0.1; lo -= padY; hi += padY;
    if (UNIT_METRICS.includes(metric)) { lo = Math.max(0, lo); hi = Math.min(1, hi); }
    const n = points.length;
    const x = (i) => (n === 1 ? L + (W - L - R) / 2 : L + (i * (W - L - R)) / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
    const nodes = [];
    for (let k = 0; k <= 4; k += 1) {
      const v = lo + ((hi - lo) * k) / 4;
      nodes.push(svg('line', { class: 'grid-line', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      nodes.push(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtNum(v, 3)));
    }
    nodes.push(svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    // At most one label per ~40 px, counted back from the newest: 300
    // labels ran together.
    const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor((W - L - R) / 40))));
    points.forEach((p, i) => {
      if ((n - 1 - i) % every === 0) nodes.push(svg('text', { x: x(i), y: H - B + 16, 'text-anchor': 'middle' }, `v${p.version}`));
    });
    const path = (key) => points.map((p, i) => (Number.isFinite(p[key]) ? `${x(i)},${y(p[key])}` : null)).filter(Boolean).join(' ');
    nodes.push(svg('polyline', { class: 'series-baseline', points: path('baseline') }));
    nodes.push(svg('polyline', { class: 'series-metric', points: path('value') }));
    points.forEach((p, i) => {
      if (Number.isFinite(p.baseline)) {
        nodes.push(svg('circle', { class: 'dot-baseline', cx: x(i), cy: y(p.baseline), r: 3 },
          svg('title', null, `v${p.version} baseline ${metric} ${fmtNum(p.baseline, 4)}`)));
      }
      if (Number.isFinite(p.value)) {
        nodes.push(svg('circle', { class: p.version === liveVersion ? 'dot-live' : 'dot-metric', cx: x(i), cy: y(p.value), r: p.version === liveVersion ? 5.5 : 4 },
          svg('title', null, `v${p.version} ${metric} ${fmtNum(p.value, 4)}${p.version === liveVersion ? ' (live)' : ''}`)));
      }
    });
    nodes.push(svg('text', { class: 'title', x: L, y: 16 }, `${metric} by version (${higherIsBetter ? 'higher' : 'lower'} is better)`));
    const lx = W < 500 ? L + 210 : W - R, ly = W < 500 ? 26 : 8;
    nodes.push(svg('rect', { class: 'legend-metric', x: lx - 210, y: ly, width: 14, height: 4 }));
    nodes.push(svg('text', { x: lx - 192, y: ly + 6 }, 'model'));
    nodes.push(svg('rect', { class: 'legend-baseline', x: lx - 150, y: ly, width: 14, height: 4 }));
    nodes.push(svg('text', { x: lx - 132, y: ly + 6 }, 'baseline'));
    nodes.push(svg('circle', { class: 'dot-live', cx: lx - 72, cy: ly + 2, r: 4 }));
    nodes.push(svg('text', { x: lx - 62, y: ly + 6 }, 'live'));
    // Read out in place of the picture: the values, newest last.
    const said = points.slice(-12).map((p) => `v${p.version} ${fmtNum(p.value, 4)}${p.version === liveVersion ? ' (live)' : ''}`
      + (Number.isFinite(p.baseline) ? `, baseline ${fmtNum(p.baseline, 4)}` : '')).join('; ');
    const label = `${metric} by version, ${higherIsBetter ? 'higher' : 'lower'} is better${n > 12 ? `, the newest 12 of ${n}` : ''}: ${said}`;
    return svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label }, nodes);
  }

  function sparkline(values) {
    const W = 200, H = 34;
    const vs = values.filter((v) => Number.isFinite(v));
    if (vs.length < 2) return svg('svg', { class: 'spark', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    const hi = Math.max(...vs, 1e-9), lo = Math.min(0, ...vs);
    const n = values.length;
    const pts = values.map((v, i) => `${((i * W) / (n - 1)).toFixed(1)},${(H - 2 - ((Number.isFinite(v) ? v : 0) - lo) / (hi - lo) * (H - 4)).toFixed(1)}`);
    return svg('svg', { class: 'spark', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' },
      svg('polygon', { class: 'area', points: `0,${H} ${pts.join(' ')} ${W},${H}` }),
      svg('polyline', { points: pts.join(' ') }));
  }

  function shareBar(arms) {
    const live = arms.filter((a) => !a.shadow);
    let x = 0;
    const rects = live.map((a, i) => {
      const w = Math.max(0, Number(a.weight) || 0) * 100;
      const r = svg('rect', { class: `arm-${i % 4}`, x, y: 0, width: w, height: 10 }, svg('title', null, `${a.name}: ${fmtPct(a.weight)}`));
      x += w;
      return r;
    });
    // The arms' table beside it gives the shares in words.
    return h('div.share-bar', null, svg('svg', { viewBox: '0 0 100 10', preserveAspectRatio: 'none', 'aria-hidden': 'true' }, rects));
  }

  // Green and red say better and worse to some readers only: the words are
  // there for a screen reader (and an arrow for everyone).
  function sayBetter(better) {
    if (better === null || better === undefined) return null;
    return [h('span', { 'aria-hidden': 'true' }, better ? ' ▲' : ' ▼'), h('span.visually-hidden', null, better ? ' (better)' : ' (worse)')];
  }

  // ---------------------------------------------------------------------------
  // Model helpers

  function primaryMetric(task) {
    if (task === 'binary') return { name: 'roc_auc', higher: true };
    if (task === 'multiclass') return { name: 'log_loss', higher: false };
    return { name: 'rmse', higher: false };
  }

  const HIGHER_IS_BETTER = ['roc_auc', 'accuracy', 'r2', 'f1', 'precision', 'recall', 'pr_auc', 'average_precision', 'macro_f1', 'decision_precision', 'decision_recall'];
  function higherIsBetter(metric) { return HIGHER_IS_BETTER.includes(metric); }

  function numericMetrics(m) {
    const out = {};
    if (!m || typeof m !== 'object') return out;
    // "rows" counts the holdout rows: a size, not a metric; the decision
    // threshold (and the F1 it reaches) is a setting, shown apart.
    for (const [k, v] of Object.entries(m)) if (typeof v === 'number' && k !== 'rows' && !THRESHOLD_KEYS.includes(k)) out[k] = v;
    return out;
  }

  const THRESHOLD_KEYS = ['best_threshold', 'best_threshold_f1'];
  // The operating point's numbers are shown with its threshold.
  const isDecisionMetric = (k) => k.startsWith('decision_');
  // A rule as written (0.0004 is not 0, nor 0.9999 1); a threshold to four
  // significant digits.
  const exact = (x) => (Number.isFinite(x) ? String(x) : '—');
  const sig4 = (x) => {
    if (!Number.isFinite(x)) return '—';
    // More digits where four would round to 0 or 1 (0.99996 is not 1).
    for (let p = 4; p < 17; p++) {
      const r = Number(x.toPrecision(p));
      if (r === x || (r !== 0 && r !== 1)) return String(r);
    }
    return String(x);
  };
  function decisionRuleText(d) {
    if (d.rule === 'fixed') return `fixed ${exact(d.threshold)}`;
    if (d.rule === 'min_cost') return `min cost (FP ${exact(d.false_positive_cost)}, FN ${exact(d.false_negative_cost)})`;
    return `${d.rule.replace(/_/g, ' ')} ${exact(d.target)}`;
  }
  // The threshold the version decides at, and what it reaches on the holdout.
  function thresholdText(m) {
    const d = m && m.decision;
    if (d && typeof d === 'object' && Number.isFinite(d.threshold)) {
      if (d.rule === 'f1') return `threshold ${sig4(d.threshold)} (F1 ${fmtNum(d.f1, 3)})`;
      return `threshold ${sig4(d.threshold)} (${decisionRuleText(d)}${d.met ? '' : ': not met'})`;
    }
    if (!m || !Number.isFinite(m.best_threshold)) return null;
    return `threshold ${fmtNum(m.best_threshold, 3)}${Number.isFinite(m.best_threshold_f1) ? ` (F1 ${fmtNum(m.best_threshold_f1, 3)})` : ''}`;
  }
  function thresholdTitle(m) {
    const d = m && m.decision;
    if (!d || typeof d !== 'object' || !Array.isArray(d.precision_interval)) return null;
    const iv = (x) => (Array.isArray(x) ? ` [${sig4(x[0])}, ${sig4(x[1])}]` : '');
    return `On the ${d.rows} holdout rows: ${d.answered_positive} answered positive, precision ${sig4(d.precision)}${iv(d.precision_interval)}, ` +
      `recall ${sig4(d.recall)}${iv(d.recall_interval)} of ${d.positives} positive, ` +
      `false positive rate ${sig4(d.false_positive_rate)}${iv(d.false_positive_rate_interval)} of ${d.rows - d.positives} negative (95% intervals)` +
      (d.met ? '' : `. Not met: ${d.unmet}`);
  }

  // Metrics that cannot leave [0, 1]: a chart's axis stops there.
  const UNIT_METRICS = ['roc_auc', 'accuracy', 'f1', 'precision', 'recall', 'pr_auc', 'average_precision', 'macro_f1', 'brier', 'calibration_error', 'decision_precision', 'decision_recall', 'decision_false_positive_rate'];

  const CALIBRATION_METRICS = ['brier', 'calibration_error', 'calibration_error_by_chance'];
  // A calibrated version's map, in words: "calibrated (isotonic)".
  function calibrationText(m) {
    const c = m && m.calibration;
    return c && typeof c === 'object' && c.method ? `calibrated (${c.method})` : null;
  }

  // Which versions are disabled, as each version says (the events list is
  // only the newest 500: an older disable fell out of it).
  function disabledSet(versions) {
    return new Set((versions || []).filter((v) => v.disabled).map((v) => v.version));
  }

  function snapshotText(s, short) {
    if (!s || typeof s !== 'object') return jsonText(s);
    if (short) {
      return [s.max_fact_id !== undefined ? `≤ #${fmtNum(s.max_fact_id)}` : null,
        s.train_rows !== undefined ? `${fmtNum(s.train_rows)} train` : null,
        s.test_rows !== undefined ? `${fmtNum(s.test_rows)} holdout` : null].filter(Boolean).join(' · ');
    }
    const parts = [];
    if (s.max_fact_id !== undefined) parts.push(`facts ≤ #${fmtNum(s.max_fact_id)}`);
    for (const k of ['train_rows', 'test_rows', 'labelled_entities']) {
      if (s[k] !== undefined) parts.push(`${fmtNum(s[k])} ${k === 'test_rows' ? 'holdout' : k === 'train_rows' ? 'train' : 'labelled'}`);
    }
    // A split by time: where its holdout began.
    if (s.holdout_from) parts.push(`holdout labelled from ${fmtTime(s.holdout_from)}`);
    return parts.length ? parts.join(', ') : JSON.stringify(s);
  }

  // The parameters that matter for the chosen algorithm (the search's
  // trace is summarised separately).
  const PARAMS_FOR = {
    linear: ['c', 'lambda', 'max_iterations'],
    kernel: ['c', 'gamma', 'lambda', 'max_kernel_rows'],
    forest: ['num_trees', 'min_samples_per_leaf', 'feature_subsampling'],
    baseline: [],
  };
  function paramsText(v) {
    const p = v.params;
    if (!p || typeof p !== 'object') return jsonText(p);
    const keys = PARAMS_FOR[v.algorithm] || Object.keys(p).filter((k) => k !== 'search' && k !== 'requested');
    const parts = keys.filter((k) => p[k] !== undefined).map((k) => `${k}=${fmtNum(p[k], 4)}`);
    if (p.requested) parts.unshift(`requested ${p.requested}`);
    return parts.join(', ') || '—';
  }
  function searchText(p) {
    const s = p && p.search;
    if (!s || typeof s !== 'object') return 'no search';
    const tried = Array.isArray(s.tried) ? s.tried.length : 0;
    return `${tried} candidates in ${fmtNum(s.budget_seconds)} s; best ${s.score || 'cv'} ${fmtNum(s.best_cv_score, 4)} vs baseline ${fmtNum(s.baseline_cv_score, 4)}`;
  }

  function timingsText(t) {
    if (!t || typeof t !== 'object') return jsonText(t);
    const parts = Object.entries(t).filter(([k]) => k !== 'total_seconds' && typeof t[k] === 'number')
      .map(([k, v]) => `${k.replace(/_seconds$/, '')} ${fmtNum(v, 2)}`);
    return `${t.total_seconds !== undefined ? `${fmtNum(t.total_seconds, 2)} s` : ''}${parts.length ? ` (${parts.join(', ')})` : ''}`;
  }

  function gateText(g) {
    if (!g || typeof g !== 'object') return jsonText(g);
    if (g.summary) return g.summary;
    if (Array.isArray(g.reasons) && g.reasons.length) return `rejected: ${g.reasons.join('; ')}`;
    if (g.passed !== undefined) return g.passed ? 'passed' : 'rejected';
    return JSON.stringify(g);
  }

  // ---------------------------------------------------------------------------
  // Views. Each view renders into `root` and may return {refresh} for the
  // live parts; `ctx.alive()` turns false when the user navigates away.

  function pageHead(title, sub, ...right) {
    return h('div.page-head', null,
      h('div', null, h('h1', null, title), sub ? h('div.sub', null, sub) : null),
      right.length ? h('div.actions', null, right) : null);
  }

  function loading() { return h('p.muted', null, 'Loading…'); }

  // ---- overview

  const rateHistory = { facts_per_second: [], predictions_per_second: [], p50_ms: [], p99_ms: [], fallback_share: [] };
  let lastHistoryUptime = null;

  function pushHistory(rates, uptime) {
    if (uptime === lastHistoryUptime) return;
    lastHistoryUptime = uptime;
    for (const k of Object.keys(rateHistory)) {
      rateHistory[k].push(rates && Number.isFinite(Number(rates[k])) ? Number(rates[k]) : NaN);
      if (rateHistory[k].length > 60) rateHistory[k].shift();
    }
  }

  function viewOverview(root) {
    const notice = h('div');
    // The uptime changes its text only: a heading drawn anew every 2 s moved
    // a screen reader's place.
    const uptime = h('span', null, 'Updates every 2 s');
    const head = pageHead('Overview', uptime);
    const tiles = h('div.grid.tiles');
    const comps = h('div.grid');
    const models = h('div.card', null, loading());
    replace(root, head, notice, tiles, comps, models);
    const drawTiles = liveRegion(tiles);
    const drawComps = liveRegion(comps);
    const drawModels = liveRegion(models);
    const drawNotice = liveRegion(notice);

    const refresh = async () => {
      let ov = null;
      let missing = false;
      try {
        ov = await get('/v1/overview');
      } catch (err) {
        if (err.status === 404) missing = true;
        else throw err;
      }
      if (missing) {
        drawNotice({ missing }, () => h('div.alert.info', null,
          h('div.title', null, 'The live overview is not available on this server yet.'),
          'GET /v1/overview answered 404 Not Found. Below is what /v1/status, /v1/serving and /v1/jobs report instead; rates need /v1/overview.'));
        ov = await fallbackOverview();
      } else {
        drawNotice({}, () => []);
        pushHistory(ov.rates, ov.uptime_seconds);
      }
      const up = ov.uptime_seconds !== undefined ? fmtDuration(ov.uptime_seconds) : null;
      uptime.textContent = up ? `Up ${up} · updates every 2 s` : 'Updates every 2 s';
      const rates = { ...(ov.rates || {}) };
      if (rates.predictions_total === 0) {
        // No prediction yet: a latency or a share of nothing is not 0.
        rates.p50_ms = null; rates.p99_ms = null; rates.fallback_share = null;
      }
      drawTiles({ rates, hist: rateHistory }, () => [
        rateTile('Facts per second', rates.facts_per_second, '/s', rateHistory.facts_per_second),
        rateTile('Predictions per second', rates.predictions_per_second, '/s', rateHistory.predictions_per_second),
        rateTile('p50 latency', rates.p50_ms, 'ms', rateHistory.p50_ms),
        rateTile('p99 latency', rates.p99_ms, 'ms', rateHistory.p99_ms),
        rateTile('Fallback share', rates.fallback_share, '%', rateHistory.fallback_share, true),
      ]);
      const c = ov.components || {};
      const order = ['writer', 'trainer', 'scheduler', 'supervisor', 'serving', 'http'];
      const names = [...order.filter((k) => k in c), ...Object.keys(c).filter((k) => !order.includes(k))];
      drawComps({ c, minute: Math.floor(Date.now() / 5000) }, () => names.map((name) => componentCard(name, c[name])));
      const [list, serving] = await Promise.all([get('/v1/models'), get('/v1/serving').catch(() => null)]);
      // Each model's live version's drift over its window, in brief.
      const drift = {};
      const down = {};  // models whose live version cannot answer: what answers instead
      for (const m of (serving && serving.models) || []) {
        const live = (m.versions || []).find((v) => v.role === 'live');
        if (live && live.drift) drift[m.model] = live.drift;
        if (m.live_alias && m.serving_version !== m.live_alias) {
          const prev = (m.versions || []).find((v) => v.role === 'previous');
          down[m.model] = { problem: m.problem || 'not_loaded', fallback: prev ? prev.version : null };
        }
      }
      const liveCell = (m) => {
        if (!(m.aliases && m.aliases.live)) return h('span.muted', null, 'none');
        const d = down[m.name];
        if (!d) return `v${m.aliases.live}`;
        const why = d.problem === 'version_disabled' ? 'disabled' : 'not serving';
        return [`v${m.aliases.live} `, badge(why, 'bad'),
          h('span.muted', null, d.fallback ? ` v${d.fallback} answers` : ' fallback answers')];
      };
      const driftCell = (name) => {
        const d = drift[name];
        if (!d) return h('span.muted', null, '—');
        if (!d.enough_requests) return badge('waiting');
        return [badge(d.drifted ? 'drifted' : 'stable'), d.drifted && d.worst_field ? ` ${d.worst_field}` : null];
      };
      drawModels({ list, drift, down }, () => [
        h('div.card-head', null, h('h2', null, 'Models'), h('a', { href: '#/models' }, 'All models →')),
        list.models.length ? table(['Model', 'Task', 'Live', 'Versions', 'Last job', 'Drift'], list.models.map((m) => h('tr', { 'data-model': m.name },
          h('td', null, h('a', { href: `#/models/${enc(m.name)}` }, m.name)),
          h('td', null, m.task),
          h('td.live', null, liveCell(m)),
          h('td.num', null, fmtNum(m.versions)),
          h('td', null, m.last_job ? [badge(m.last_job.state), ' ', h('a', { href: `#/jobs/${m.last_job.id}` }, `job ${m.last_job.id}`)] : '—'),
          h('td.drift', null, driftCell(m.name)))))
          : emptyModels(),
      ]);
    };
    return { refresh };
  }

  function rateTile(label, value, unit, hist, isShare) {
    const shown = value === null || value === undefined ? '—'
      : isShare ? fmtNum(Number(value) * 100, 1) : unit === 'ms' ? fmtMs(value, 2) : fmtNum(value, 1);
    return h('div.card.tile', null,
      h('div.label', null, label),
      h('div.value', null, shown, shown !== '—' ? h('span.unit', null, unit) : null),
      sparkline(hist.map((v) => (isShare ? v * 100 : v))));
  }

  // Process counters start at 0 with each start of Kennel, unlike the
  // tables behind the Jobs page: say so, or "jobs run 0" reads as a lie.
  const SINCE_START = new Set(['jobs_run', 'jobs_failed', 'triggers_fired', 'checks', 'commits', 'failed_commits', 'refused_full', 'ticks', 'actions']);

  // Shown capitalised by the stylesheet; an acronym is written out.
  const COMPONENT_TITLES = { http: 'HTTP' };

  function componentCard(name, comp) {
    comp = comp || {};
    const rows = [];
    for (const [k, v] of Object.entries(comp)) {
      if (k === 'state') continue;
      let shown;
      if (/(^|_)(last_activity|last_tick|last_commit|at|time)$/.test(k) || k.startsWith('last_') && typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)) {
        shown = agoEl(v);
      } else if (k === 'last_error') {
        shown = v ? h('span.worse', null, String(v)) : h('span.muted', null, 'none');
      } else if (k === 'job' && v && typeof v === 'object') {
        shown = h('a', { href: `#/jobs/${v.id}` }, `job ${v.id}${v.model ? ' · ' + v.model : ''}${v.progress !== undefined ? ' · ' + fmtPct(v.progress) : ''}`);
      } else if (k === 'job' && (typeof v === 'number')) {
        shown = h('a', { href: `#/jobs/${v}` }, `job ${v}`);
      } else if (Array.isArray(v)) {
        shown = v.length ? `${v.length}` : '0';
      } else if (v && typeof v === 'object') {
        shown = jsonText(v);
      } else if (typeof v === 'number') {
        shown = fmtNum(v);
      } else {
        shown = v === null || v === undefined || v === '' ? '—' : String(v);
      }
      rows.push(h('dt', null, humanize(k) + (SINCE_START.has(k) ? ' since start' : '')), h('dd', null, shown));
    }
    return h('div.card.component', { 'data-component': name },
      h('h2', null, COMPONENT_TITLES[name] || name, badge(comp.state || 'unknown')),
      h('dl.kv', null, rows));
  }

  // What the overview can show from older endpoints when /v1/overview is missing.
  async function fallbackOverview() {
    const [st, sv, jobs] = await Promise.all([
      get('/v1/status').catch(() => null), get('/v1/serving').catch(() => null), get('/v1/jobs').catch(() => null)]);
    const c = {};
    if (st && st.writer) {
      const w = st.writer;
      c.writer = { state: w.failed_commits ? 'degraded' : 'running', last_activity: w.last_commit, queue: w.pending,
        queue_limit: w.queue_limit, commits: w.commits, failed_commits: w.failed_commits, refused_full: w.refused_full };
    }
    if (jobs) {
      const running = jobs.jobs.find((j) => j.state === 'running');
      const queued = jobs.jobs.filter((j) => j.state === 'queued').length;
      c.trainer = { state: running ? 'running' : 'idle', job: running ? { id: running.id, model: running.model, progress: running.progress } : null,
        queue: queued, jobs_run: jobs.jobs.filter((j) => j.finished_at).length,
        jobs_failed: jobs.jobs.filter((j) => ['failed', 'timed_out'].includes(j.state)).length };
    }
    if (sv) {
      if (sv.supervisor) c.supervisor = { state: sv.supervisor.state, last_tick: sv.supervisor.last_tick, ticks: sv.supervisor.ticks, actions: (sv.supervisor.actions || []).length };
      c.serving = { state: 'running', models: (sv.models || []).length,
        loaded_versions: (sv.models || []).reduce((n, m) => n + (m.versions || []).length, 0),
        pool_threads: sv.predict_pool && sv.predict_pool.threads, pool_queue: sv.predict_pool && sv.predict_pool.queued,
        refused: sv.predict_pool && sv.predict_pool.refused };
    }
    return { components: c, rates: {}, uptime_seconds: st && st.started_at ? between(st.started_at, new Date().toISOString()) : undefined };
  }

  // ---- streams

  function curlFact() {
    const origin = location.origin;
    return `curl -X POST ${origin}/v1/facts \\
  -H 'Authorization: Bearer <API key with the ingest scope>' \\
  -H 'Content-Type: application/json' \\
  -d '{"stream": "posts", "entity": "p1", "time": "${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}",
       "data": {"length": 120, "hashtags": 3, "breed": "corgi", "hour": 14}}'`;
  }

  function viewStreams(root, params) {
    const list = h('div.card', null, loading());
    const facts = h('div');
    replace(root, pageHead('Streams', 'Facts by stream, in event-time order. Facts are never changed or deleted.'), list, facts);
    const drawList = liveRegion(list);
    let shownStream = null;
    const refresh = async () => {
      const d = await get('/v1/streams');
      drawList(d, () => (d.streams.length ? [
        h('div.card-head', null, h('h2', null, `${d.streams.length} stream${d.streams.length === 1 ? '' : 's'}`)),
        table(['Stream', { label: 'Facts', num: true }, 'First event', 'Last event', 'Last ingested', ''], d.streams.map((s) =>
          h('tr', { class: params.stream === s.stream ? 'selected' : null },
            h('td', null, h('a', { href: `#/streams/${enc(s.stream)}` }, s.stream)),
            h('td.num', null, fmtNum(s.count)),
            h('td', null, timeEl(s.first_event_time)),
            h('td', null, timeEl(s.last_event_time)),
            h('td', null, agoEl(s.last_ingest_time)),
            h('td', null, h('a', { href: `#/streams/${enc(s.stream)}` }, 'newest facts'))))),
      ] : h('div.empty', null,
        h('h2', null, 'No facts yet'),
        h('p', null, 'Send one. Create an API key with the ingest scope under ', h('a', { href: '#/keys' }, 'API keys'), ', then:'),
        h('pre', SCROLLS, curlFact()))));
      if (params.stream && shownStream !== params.stream) {
        shownStream = params.stream;
        const s = d.streams.find((x) => x.stream === params.stream);
        if (!s) {
          // A stream is its facts: with none, there is no such stream (it
          // read as an empty one).
          replace(facts, h('div.card', null, h('div.alert.warn', { role: 'status', id: 'stream-missing' },
            `There is no stream named "${params.stream}": no fact has been sent to it. The streams above are those with facts.`)));
          return;
        }
        replace(facts, h('div.card', null, loading()));
        try {
          replace(facts, await newestFactsCard(params.stream, s));
        } catch (err) {
          replace(facts, errorBox(err, `Could not read stream ${params.stream}`));
        }
      }
    };
    return { refresh };
  }

  // The API lists facts oldest first (by event time); the newest N are found
  // by widening a window back from the stream's last event time.
  // The stream's newest facts by event time, newest first: one page in
  // descending order (the oldest-first windows it replaced gave up after
  // 20 pages of a large burst and showed older facts as the newest).
  async function newestFacts(stream, want = 25) {
    return (await get(`/v1/streams/${enc(stream)}/facts?limit=${want}&order=desc`)).facts;
  }

  // A fact's data on one line, cut short by the cell; opened, the whole JSON.
  function factData(d) {
    if (!d || typeof d !== 'object') return jsonText(d);
    return h('details', null, h('summary', { title: 'Show the whole JSON' }, JSON.stringify(d, null, 1).replace(/\n\s*/g, ' ')),
      h('pre', SCROLLS, JSON.stringify(d, null, 2)));
  }

  async function newestFactsCard(stream, summary) {
    const rows = await newestFacts(stream);
    return h('div.card', null,
      h('div.card-head', null, h('h2', null, `Newest facts in ${stream}`), h('span.muted.small', null, `${rows.length} shown, newest first`)),
      rows.length ? table(['Id', 'Entity', 'Event time', 'Ingested', 'Data', 'Corrects'], rows.map((f) => h('tr', null,
        h('td.num', null, f.id),
        h('td', null, f.entity),
        h('td', null, timeEl(f.time || f.event_time)),
        h('td', null, timeEl(f.ingest_time || f.ingested_at)),
        h('td.data', null, factData(f.data)),
        h('td', null, f.corrects ? `#${f.corrects}` : ''))), { label: `Newest facts in ${stream}` }) : h('p.muted', null, 'No facts in this stream.'));
  }

  // ---- models

  function curlModel() {
    return `curl -X PUT ${location.origin}/v1/models/likes \\
  -H 'Authorization: Bearer <API key with the admin scope>' \\
  -H 'Content-Type: application/json' \\
  -d '{"task": "regression", "features_from": "posts",
       "label": {"stream": "likes", "field": "likes"},
       "features": [{"field": "length"}, {"field": "breed", "transform": "category"}],
       "algorithm": "auto"}'`;
  }

  function emptyModels() {
    return h('div.empty', null, h('h2', null, 'No models yet'),
      h('p', null, 'Define one from a stream of facts, for example:'), h('pre', SCROLLS, curlModel()));
  }

  function viewModels(root) {
    const list = h('div.card', null, loading());
    const archivedBox = h('div');
    replace(root, pageHead('Models', 'Definitions, versions and what serves.'), list, archivedBox);
    const draw = liveRegion(list);
    const drawArchived = liveRegion(archivedBox);
    const refresh = async () => {
      const [d, arch, sv] = await Promise.all([get('/v1/models'), get('/v1/models?archived=true'), get('/v1/serving')]);
      // A live version that does not answer (disabled, or it cannot load)
      // is marked: a green "live → v1" read as serving while fallbacks answered.
      const problems = new Map((sv.models || []).filter((x) => x.problem && x.live_alias !== null).map((x) => [x.model, x.problem]));
      drawArchived(arch, () => (arch.models.length ? h('div.card', { id: 'archived-models' },
        h('h2', null, `Archived (${fmtNum(arch.models.length)})`),
        h('p.muted', null, 'Out of service: they answer no predictions and train no more. Open one to restore it.'),
        table(['Model', 'Task', { label: 'Versions', num: true }, 'Archived', 'By', 'Why'],
          arch.models.map((m) => h('tr', { 'data-model': m.name },
            h('td', null, h('a', { href: `#/models/${enc(m.name)}` }, m.name)),
            h('td', null, m.task),
            h('td.num', null, fmtNum(m.versions)),
            h('td', null, timeEl(m.archived && m.archived.at)),
            h('td', null, (m.archived && m.archived.by) || '—'),
            h('td.text', null, (m.archived && m.archived.reason) || '—'))))) : []));
      draw({ d, problems: [...problems] }, () => (d.models.length ? table(
        ['Model', 'Task', { label: 'Revision', num: true }, 'Aliases', { label: 'Versions', num: true }, 'Last job', 'Created'],
        d.models.map((m) => h('tr', null,
          h('td', null, h('a', { href: `#/models/${enc(m.name)}` }, h('strong', null, m.name))),
          h('td', null, m.task),
          h('td.num', null, m.revision),
          h('td', null, Object.entries(m.aliases || {}).map(([a, v]) => h('span.chip', null,
            a === 'live' && problems.has(m.name)
              ? badge(`live → v${v} ${problems.get(m.name) === 'version_disabled' ? 'disabled' : 'not serving'}`, 'bad')
              : badge(`${a} → v${v}`, a === 'live' ? 'ok' : 'info')))),
          h('td.num', null, fmtNum(m.versions)),
          h('td', null, m.last_job ? [badge(m.last_job.state), ' ', h('a', { href: `#/jobs/${m.last_job.id}` }, `job ${m.last_job.id}`),
            m.last_job.state === 'running' ? [' ', h('progress', { max: 1, value: m.last_job.progress || 0, 'aria-label': `Job ${m.last_job.id} progress` })] : null] : '—'),
          h('td', null, timeEl(m.created_at))))) : emptyModels()));
    };
    return { refresh };
  }

  // ---- one model

  // How serving stands for a model with a live alias: whether the live
  // version answers and, when it cannot, what answers instead (from
  // GET /v1/serving: its problem and the earlier live versions it falls back to).
  function servingState(sv, live, disabled) {
    if (!live) return { down: false };
    const problem = sv && sv.live_alias === live && sv.serving_version !== live ? sv.problem || 'not_loaded' : null;
    if (!problem && !disabled.has(live)) return { down: false };
    const prev = sv ? (sv.versions || []).find((v) => v.role === 'previous') : null;
    return { down: true, disabled: disabled.has(live) || problem === 'version_disabled', problem, fallback: prev ? prev.version : null };
  }

  function servingNotice(live, st) {
    if (!st.down) return [];
    const what = st.disabled ? `Live v${live} is disabled` : `Live v${live} cannot serve (${humanize(st.problem)})`;
    return h('div.alert.error', { role: 'alert', id: 'serving-notice' },
      h('div.title', null, `${what}: ${st.fallback ? `v${st.fallback} answers instead.` : 'no version answers.'}`),
      // The chain's next steps after the earlier live versions: the live
      // version's baseline (it answers even when its version is disabled),
      // then the definition's constant or the label's prior.
      st.fallback ? `v${st.fallback} is the newest earlier live version that can serve; predictions say fallback. `
        : 'Predictions get a fallback answer (from the live version\'s baseline, else the definition\'s fallback or the label\'s prior) and say fallback. ',
      st.disabled ? 'Enable it again, promote another version or roll back.' : 'Promote another version or roll back.');
  }

  // Versions out of service: GET /v1/serving's list (what serving acts on)
  // and the versions' own state (which may be a poll ahead of it).
  function offVersions(sv, versions) {
    const off = disabledSet(versions);
    for (const v of (sv && Array.isArray(sv.disabled) ? sv.disabled : [])) off.add(v);
    return off;
  }

  // An arm whose version is disabled still has its share of the entities:
  // the serving chain answers them (live first), and a shadow arm is not
  // scored. Without the mark it reads as a normal arm.
  function disabledArmBadge(a, off, sv) {
    if (!off.has(a.version)) return null;
    if (a.shadow) return [' ', badge('disabled — not scored', 'bad')];
    // When live cannot serve either, what serves in its place (or nothing).
    const serving = sv && sv.serving_version && sv.serving_version !== a.version ? sv.serving_version : null;
    const who = !serving ? 'the fallback' : serving === sv.live_alias ? 'live' : `v${serving}`;
    return [' ', badge(`disabled — ${who} answers its share`, 'bad')];
  }

  // What the canary promotion policy's experiment is, decides or decided.
  // `report`: the running experiment's live metrics (its entities so far).
  const CANARY_OUTCOMES = {
    promoted: (c) => `published: live moved to v${c.version}`,
    failed: () => 'not published: worse than live on its traffic, or its answers were mostly fallbacks',
    expired: () => 'not published: undecided at its deadline',
    taken_out: (c) => `not published: v${c.version} was disabled or could not be served`,
    live_moved: () => 'ended: live moved (or was taken out of service) while it ran, so a person decided',
    definition_changed: () => 'not published: the model\'s definition changed while it ran',
    handed_over: () => 'handed over to a person when its arms were changed: the policy does not decide it',
    ended: () => 'not published: ended by a person (or with its model\'s archiving)',
  };
  function canaryNote(e, report) {
    const c = e.canary;
    if (!c) return null;
    const head = `Canary of v${c.version} against live v${c.against} (job ${c.job}): `;
    if (c.outcome) {
      const say = CANARY_OUTCOMES[c.outcome];
      return h('p.small.canary', { 'data-canary': c.outcome }, badge('canary'), ' ', head, say ? say(c) : c.outcome, '.');
    }
    const cmp = report && (report.comparisons || []).find((x) => x.arm === 'canary' && x.version === c.version);
    const now = !report ? ' Its outcomes so far are on the Deployments page.'
      : cmp ? ` Now: outcomes from ${fmtNum(cmp.entities)} and ${fmtNum(cmp.against_entities)} entities (canary, control).` : ' No outcome of the canary yet.';
    return h('p.small.canary', { 'data-canary': 'running' }, badge('canary'), ' ', head,
      `${fmtPct(c.share)} of the requests with an entity. Once outcomes from ${fmtNum(c.entities)} entities a side are in, it goes live unless they show it worse than live by more than ${c.max_loss}; undecided by `,
      timeEl(c.deadline), ', it is not published.', now);
  }

  // The model's running experiment, in brief; it is managed on the Deployments page.
  function modelExperimentCard(name, e, off, sv) {
    const arms = Array.isArray(e.arms) ? e.arms : [];
    return h('div.card', { id: 'model-experiment', 'data-experiment': e.id },
      h('div.card-head', null, h('h2', null, `Experiment ${e.id} `, badge('active')),
        h('a', { href: `#/deployments/${enc(name)}` }, 'Manage it on Deployments →')),
      h('p.small', null, `Traffic is split between versions since ${fmtTime(e.started_at)} (${e.started_by}: ${e.reason}).`),
      canaryNote(e, null),
      shareBar(arms),
      table(['Arm', 'Version', { label: 'Share', num: true }], arms.map((a) => h('tr', { 'data-arm': a.name },
        h('td', null, a.name, a.shadow ? [' ', badge('shadow')] : null, disabledArmBadge(a, off, sv)),
        h('td', null, `v${a.version}`),
        h('td.num', null, a.shadow ? (off.has(a.version) ? 'shadow: never returned' : 'shadow: scored, never returned') : fmtPct(a.weight)))), { label: `Arms of experiment ${e.id}` }));
  }

  const FAILED_JOB_STATES = ['failed', 'cancelled', 'timed_out', 'interrupted'];

  function viewModel(root, params, ctx) {
    const name = params.name;
    const head = h('div');
    const notice = h('div');
    const jobsBox = h('div');
    const experimentBox = h('div');
    const chartBox = h('div.card', null, loading());
    const versionsBox = h('div.card', null, loading());
    const compareBox = h('div.card');
    const defBox = h('div.card');
    const revisionsBox = h('div.card');
    const tryBox = h('div.card', { id: 'try-prediction' });
    const driftBox = h('div.card', { id: 'feature-drift' });
    const importanceBox = h('div.card', {id: 'importance'});
    const calibrationBox = h('div.card', { id: 'calibration', hidden: true });
    const lower = h('div.two-col', null, defBox, revisionsBox);
    replace(
        root, head, notice, jobsBox, experimentBox, chartBox, versionsBox, importanceBox, calibrationBox, driftBox, compareBox,
        tryBox, lower);
    const drawHead = liveRegion(head);
    const drawNotice = liveRegion(notice);
    const drawJobs = liveRegion(jobsBox);
    const drawExperiment = liveRegion(experimentBox);
    const drawChart = liveRegion(chartBox);
    const drawVersions = liveRegion(versionsBox);
    const drawRevisions = liveRegion(revisionsBox);
    const drawDrift = liveRegion(driftBox);
    const drawImportance = liveRegion(importanceBox);
    const drawCalibration = liveRegion(calibrationBox);
    const state = { model: null, versions: [], compare: [null, null], defDrawn: false, rollbackTo: null, gone: false };

    const train = () => act({ title: `Train ${name} now`, text: 'Queues a training job on the facts stored so far. The result goes through the promotion gate.', confirm: 'Train now', placeholder: 'e.g. new labels arrived' },
      (reason) => api('POST', `/v1/models/${enc(name)}/train`, { reason }),
      (r) => (r.already_queued ? `Job ${r.job} was already queued for ${name}` : `Queued training job ${r.job} for ${name}`));
    const rollback = () => {
      // What the dialog names is what is done: from this live version to
      // that one, or nothing (a refresh while it is open changes neither).
      const live = state.model && state.model.aliases ? state.model.aliases.live : undefined;
      const to = state.rollbackTo;
      return act({ title: `Roll back ${name} to v${to}`,
        text: `Moves live from v${live} back to v${to}: the previous enabled live version.`, confirm: `Roll back to v${to}`, danger: true, placeholder: `e.g. complaints about v${live}` },
      (reason) => api('POST', `/v1/models/${enc(name)}/rollback`, { reason, to }, { 'If-Match': `"v${live}"` }),
      (r) => `Rolled back ${name}: live moved from v${r.from} to v${r.to}`);
    };

    const archive = async () => {
      const first = await act({ title: `Archive ${name}`,
        text: 'Takes the model out of service: it answers no predictions (404), trains no more, its queued jobs are cancelled and its experiment ended. Its versions and history stay, and Restore brings it back as it was.',
        confirm: 'Archive', danger: true, placeholder: 'e.g. replaced by another model' },
      async (reason) => {
        try {
          return await api('POST', `/v1/models/${enc(name)}/archive`, { reason });
        } catch (err) {
          // Predictions were asked of it lately: asked once more, below,
          // once this dialog has closed.
          if (!(err.status === 409 && err.field === 'force')) throw err;
          return { needsForce: err.message, reason };
        }
      },
      (r) => (r.needsForce ? null : `Archived ${name}`));
      if (!first || !first.needsForce) return;
      const mark = focusMark();
      const again = await ask({ title: `${name} is still asked for predictions`, text: first.needsForce, confirm: 'Archive anyway', reason: false, danger: true,
        run: () => api('POST', `/v1/models/${enc(name)}/archive`, { reason: first.reason, force: true }) });
      if (again === null) flash(`${name} was not archived`);
      else if (again.error) flashError(again.error, `Archive ${name}`);
      else flash(`Archived ${name}`);
      await refreshNow();
      restoreFocus(mark);
    };
    const restore = () => act({ title: `Restore ${name}`,
      text: 'Puts the model back in service as it was: its live version answers again and its retraining triggers resume.',
      confirm: 'Restore', placeholder: 'e.g. still needed' },
    (reason) => api('POST', `/v1/models/${enc(name)}/restore`, { reason }),
    (r) => `Restored ${name}${r.serving_version ? `: v${r.serving_version} answers` : ''}`);

    // No such model: one message, and this view stops asking for it.
    const gone = (err) => {
      state.gone = true;
      replace(root, pageHead([h('div.crumbs', null, h('a', { href: '#/models' }, 'Models'), ' / '), name]),
        h('div.alert.error', { role: 'alert', id: 'model-missing' },
          h('div.title', null, `There is no model named "${name}".`),
          err.message && !/no model named/.test(err.message) ? h('div', null, err.message) : null,
          h('a', { href: '#/models' }, 'See all models.')));
    };

    const refresh = async () => {
      if (state.gone) return;
      let m, vs, jobs, drift, ex, sv;
      try {
        [m, vs, jobs, drift, ex, sv] = await Promise.all([
          get(`/v1/models/${enc(name)}`),
          get(`/v1/models/${enc(name)}/versions`),
          get(`/v1/models/${enc(name)}/jobs`).catch(() => ({ jobs: [] })),
          get(`/v1/models/${enc(name)}/drift`).catch((e) => ({ error: e })),
          get(`/v1/models/${enc(name)}/experiments`).catch(() => ({ experiments: [] })),
          get(`/v1/serving?model=${enc(name)}`).catch(() => null),
        ]);
      } catch (err) {
        if (err.status === 404 && ctx.alive()) { gone(err); return; }
        throw err;
      }
      if (!ctx.alive()) return;
      state.model = m;
      state.versions = vs.versions;
      const task = (m.definition && m.definition.task) || '';
      const pm = primaryMetric(task);
      const live = m.aliases ? m.aliases.live : undefined;
      const disabled = disabledSet(vs.versions);
      const svModel = sv ? (sv.models || []).find((x) => x.model === name) : null;
      const serving = servingState(svModel, live, disabled);
      // Where the server's rollback would move live (its own rule: the path
      // live came by, enabled versions of live's task that can serve).
      state.rollbackTo = live && m.rollback ? m.rollback.to : null;
      const rollbackTitle = !live ? 'Nothing is live to roll back'
        : state.rollbackTo ? `Moves live back to v${state.rollbackTo}`
          : m.rollback && m.rollback.passed_over_task ? 'Earlier live versions were trained for another task: promote one by its number'
            : m.rollback && m.rollback.passed_over_removed ? 'Retention removed the artifacts of earlier live versions (serve --keep-versions)'
              : 'No earlier enabled live version to roll back to';

      // The list is the newest page (100); count is every version.
      const nVersions = vs.count !== undefined ? vs.count : vs.versions.length;
      const archived = m.archived || null;
      drawHead({ m: { name: m.name, revision: m.revision, aliases: m.aliases, task }, n: nVersions, serving, to: state.rollbackTo, archived }, () => pageHead(
        [h('div.crumbs', null, h('a', { href: '#/models' }, 'Models'), ' / '), m.name],
        [`${task} · `, h('span', { id: 'model-revision' }, `revision ${m.revision}`), ` · ${fmtNum(nVersions)} version${nVersions === 1 ? '' : 's'} · `,
          Object.keys(m.aliases || {}).length ? Object.entries(m.aliases).map(([a, v]) => h('span.chip', null,
            a === 'live' && serving.down ? badge(`live → v${v} ${serving.disabled ? 'disabled' : 'not serving'}`, 'bad') : badge(`${a} → v${v}`, a === 'live' ? 'ok' : 'info'))) : 'nothing live yet',
          serving.down && !archived ? h('span.chip', null, badge(serving.fallback ? `answering: v${serving.fallback} (fallback)` : 'answering: fallback only', 'warn')) : null,
          archived ? h('span.chip', null, badge('archived', 'bad')) : null],
        archived ? null : h('button.primary', { type: 'button', onclick: train, 'data-action': 'train' }, 'Train now'),
        archived ? null : h('button.danger', { type: 'button', onclick: rollback, 'data-action': 'rollback', disabled: !state.rollbackTo, title: rollbackTitle,
          'aria-label': state.rollbackTo ? null : `Roll back (${rollbackTitle})` }, 'Roll back'),
        h('a.button', { href: `#/deployments/${enc(name)}` }, 'Deployments'),
        archived ? h('button.primary', { type: 'button', onclick: restore, 'data-action': 'restore' }, 'Restore')
          : h('button', { type: 'button', onclick: archive, 'data-action': 'archive' }, 'Archive')));
      // Revision numbers drawn once (the definition card's) follow too, but
      // never back: a refresh that began before a save answers with the
      // revision before it (seen in the browser test: "revision 1" just after
      // "Saved: revision 2").
      const defRev = $('#definition-revision', defBox);
      if (defRev && !(Number(defRev.dataset.revision) > m.revision)) {
        defRev.textContent = `revision ${m.revision}`;
        defRev.dataset.revision = m.revision;
      }
      drawNotice({ live, serving, archived }, () => (archived ? h('div.alert.warn', { role: 'status', id: 'archived-notice' },
        h('div.title', null, `Archived ${fmtAgo(archived.at)}${archived.by ? ` by ${archived.by}` : ''}: ${archived.reason || 'no reason recorded'}.`),
        'It answers no predictions (404) and trains no more; its versions and history are kept. Restore puts it back in service as it was.')
        : servingNotice(live, serving)));

      const isActive = (j) => j.state === 'queued' || j.state === 'running';
      const active = jobs.jobs.filter(isActive);
      // The newest finished run, when it stored nothing: why, until a newer run finishes.
      const lastDone = jobs.jobs.filter((j) => !isActive(j)).sort((a, b) => b.id - a.id)[0];
      const lastBad = lastDone && FAILED_JOB_STATES.includes(lastDone.state) ? lastDone : null;
      drawJobs({ active, lastBad }, () => [
        active.length ? h('div.card', null, h('h2', null, 'Training now'), jobsTable(active, { model: false })) : null,
        lastBad ? h('div.card', { id: 'last-job-problem' },
          h('div.card-head', null, h('h2', null, `The last training run ${lastBad.state === 'timed_out' ? 'timed out' : lastBad.state === 'interrupted' ? 'was interrupted' : lastBad.state === 'cancelled' ? 'was cancelled' : 'failed'}`),
            h('a', { href: `#/jobs/${lastBad.id}` }, `Job #${lastBad.id} and its log →`)),
          h(`div.alert.${lastBad.state === 'failed' || lastBad.state === 'timed_out' ? 'error' : 'warn'}`, null,
            h('div.title', null, `Job #${lastBad.id} ${lastBad.state.replace(/_/g, ' ')} ${lastBad.finished_at ? fmtAgo(lastBad.finished_at) : ''}; no version was stored.`),
            lastBad.error || lastBad.message || 'No error was recorded.'),
          jobsTable([lastBad], { model: false })) : null,
      ]);
      const running = (ex.experiments || []).find((e) => e.active);
      const off = offVersions(svModel, vs.versions);
      const svBrief = svModel && { serving_version: svModel.serving_version, live_alias: svModel.live_alias };
      drawExperiment({ running: running || null, off: [...off], svBrief },
        () => (running ? modelExperimentCard(name, running, off, svBrief) : []));

      const chartPoints = vs.versions.slice().sort((a, b) => a.version - b.version).map((v) => ({
        version: v.version,
        value: numericMetrics(v.metrics)[pm.name],
        baseline: numericMetrics(v.baseline_metrics)[pm.name],
      }));
      // Drawn for the box's width (in steps of 80 px), so labels stay legible on a phone.
      const chartWidth = Math.max(320, Math.min(900, Math.round((chartBox.clientWidth - 32) / 80) * 80));
      drawChart({ chartPoints, live, chartWidth }, () => [
        h('div.card-head', null, h('h2', null, 'Primary metric across versions'), h('span.muted.small', null, `${pm.name} on each version's holdout, beside the baseline's`)),
        chartPoints.length ? versionChart(chartPoints, { metric: pm.name, higherIsBetter: pm.higher, liveVersion: live, width: chartWidth })
          : h('p.muted', null, 'No versions yet: train the model to see its metrics here.'),
      ]);

      // What the dialogs say depends on these too (drawn anew when they change).
      const runningBrief = running ? { id: running.id, arms: running.arms } : null;
      drawVersions({ vs: vs.versions, disabled: [...disabled], live, nVersions, archived, rollbackTo: state.rollbackTo, runningBrief }, () => [
        versionsTable(name, vs.versions, { pm, live, disabled, archived: !!archived, rollbackTo: state.rollbackTo, running: runningBrief }),
        nVersions > vs.versions.length ? h('p.muted.small', { id: 'versions-shown' }, `The newest ${fmtNum(vs.versions.length)} of ${fmtNum(nVersions)} versions; GET /v1/models/${name}/versions?before=${vs.next_before} lists older ones.`) : null,
      ]);
      // The live version's importance, else the newest version's.
      const shown = vs.versions.find((v) => v.version === live) ||
          vs.versions.slice().sort((x, y) => y.version - x.version)[0];
      drawImportance(
          {
              v: shown ? shown.version : null,
              imp: shown && shown.features ? shown.features.importance : null,
              live
          },
          () => importanceCard(shown, live));
      // Binary models only: their probabilities of one class can be compared with its rate.
      const binary = task === 'binary';
      calibrationBox.hidden = !binary;
      if (binary) {
        drawCalibration({ v: shown ? shown.version : null, m: shown ? shown.metrics : null, live },
          () => calibrationCard(shown, live));
      }
      // The window's age in 10 s steps: its growing alone redraws at most that often.
      // An archived model serves nothing, so nothing drifts (its drift lists no version).
      drawDrift(JSON.stringify({ drift, serving, archived }, (k, v) => (k === 'seconds' ? Math.round(v / 10) : v)), () => (archived
        ? [h('h2', null, 'Feature drift'), h('p.muted', null, 'Archived: it serves nothing, so nothing is watched for drift.')]
        : driftCard(drift, live, serving)));

      if (!state.defDrawn) {
        state.defDrawn = true;
        drawDefinition(defBox, name, m, ctx);
        drawTryPrediction(tryBox, name, m, ctx);
      }
      // An archived model answers no prediction and takes no definition:
      // the buttons only met a 404 and a 409 quoting the API.
      for (const b of [...defBox.querySelectorAll('button[data-action="save-definition"]'), ...tryBox.querySelectorAll('button[data-action="try-predict"]')]) {
        b.disabled = !!archived;
        b.title = archived ? 'Archived: restore it first' : '';
      }
      drawCompare();
      const revs = await get(`/v1/models/${enc(name)}/revisions`).catch((e) => ({ error: e }));
      drawRevisions(revs.error ? { err: revs.error.message } : revs, () => (revs.error ? errorBox(revs.error, 'Revisions') : [
        h('h2', null, 'Revisions'),
        h('p.muted.small', null, 'Each change of the definition is a new immutable revision; versions name the revision they were trained from.'),
        table(['Revision', 'Author', 'Created'], revs.revisions.slice().reverse().map((r) => h('tr', null,
          h('td.num', null, r.revision), h('td', null, r.author), h('td', null, timeEl(r.created_at))))),
      ]));
    };

    const compareKey = { last: null };
    // A version chosen with the arrow keys redraws the box: focus stays on
    // its picker.
    function drawCompare() { keepingFocus(compareBox, drawCompareNow); }
    function drawCompareNow() {
      const vs = state.versions;
      if (vs.length >= 2 && (!state.compare[0] || state.compare[0] === state.compare[1])) {
        // Default: the live version beside the newest other one.
        const sorted = vs.slice().sort((x, y) => y.version - x.version);
        const live = state.model && state.model.aliases ? state.model.aliases.live : undefined;
        const first = live && sorted.some((v) => v.version === live) ? live : sorted[0].version;
        state.compare = [first, sorted.find((v) => v.version !== first).version];
      }
      const key = JSON.stringify([state.compare, vs]);
      if (key === compareKey.last) return;
      compareKey.last = key;
      if (vs.length < 1) {
        replace(compareBox, h('h2', null, 'Compare versions'), h('p.muted', null, 'Two versions appear side by side here once the model has them.'));
        return;
      }
      const pick = (idx) => {
        const sel = h('select', { 'aria-label': idx ? 'Second version' : 'First version', 'data-compare': idx },
          vs.map((v) => h('option', { value: v.version, selected: v.version === state.compare[idx] }, `v${v.version} (${v.status})`)));
        // The other picker's version chosen here swaps the two: the same
        // version twice was reset to the default without a word, while the
        // picker showed the new choice.
        sel.addEventListener('change', () => {
          const chosen = Number(sel.value);
          if (chosen === state.compare[1 - idx]) state.compare[1 - idx] = state.compare[idx];
          state.compare[idx] = chosen;
          drawCompare();
        });
        return sel;
      };
      if (vs.length < 2) {
        replace(compareBox, h('h2', null, 'Compare versions'),
          h('p.muted', null, `Only v${vs[0].version} so far: train again to compare two versions side by side.`));
        return;
      }
      const a = vs.find((v) => v.version === state.compare[0]) || vs[0];
      const b = vs.find((v) => v.version === state.compare[1]) || vs[1];
      replace(compareBox,
        h('div.card-head', null, h('h2', null, 'Compare versions'),
          h('div.compare-head', null, pick(0), h('span.muted', null, 'vs'), pick(1))),
        compareTable(a, b, state.model && state.model.definition ? state.model.definition.task : ''));
    }

    return { refresh };
  }

  // Reliability: each bin's share positive against its mean probability
  // answered, the diagonal where they agree; a calibrated version's
  // probabilities before calibration beside them. A dot's area is its rows.
  function reliabilityChart(after, before, where = 'on the holdout') {
    const W = 300, H = 300, L = 44, R = 12, T = 28, B = 40;
    const x = (v) => L + (W - L - R) * v, y = (v) => T + (H - T - B) * (1 - v);
    const nodes = [];
    for (let k = 0; k <= 4; k += 1) {
      const v = k / 4;
      nodes.push(svg('line', { class: 'grid-line', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      nodes.push(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtNum(v, 2)));
      nodes.push(svg('text', { x: x(v), y: H - B + 16, 'text-anchor': 'middle' }, fmtNum(v, 2)));
    }
    nodes.push(svg('line', { class: 'diagonal', x1: x(0), y1: y(0), x2: x(1), y2: y(1) }));
    nodes.push(svg('text', { x: L + (W - L - R) / 2, y: H - 6, 'text-anchor': 'middle' }, 'probability answered'));
    nodes.push(svg('text', { class: 'title', x: L, y: 16 }, 'share positive'));
    const most = Math.max(1, ...after.map((b) => b.rows), ...(before || []).map((b) => b.rows));
    const series = (bins, cls, name) => {
      const filled = bins.filter((b) => b.rows > 0 && Number.isFinite(b.mean_score) && Number.isFinite(b.observed));
      nodes.push(svg('polyline', { class: `series-${cls}`, points: filled.map((b) => `${x(b.mean_score)},${y(b.observed)}`).join(' ') }));
      for (const b of filled) {
        nodes.push(svg('circle', { class: `dot-${cls}`, cx: x(b.mean_score), cy: y(b.observed), r: 2 + 5 * Math.sqrt(b.rows / most) },
          svg('title', null, `${name}: ${fmtNum(b.rows)} rows answered ${fmtNum(b.lower, 1)}-${fmtNum(b.upper, 1)}, mean ${fmtNum(b.mean_score, 3)}, ${fmtNum(b.observed, 3)} positive`)));
      }
    };
    if (before) series(before, 'before', 'before calibration');
    series(after, 'metric', before ? 'calibrated' : 'answered');
    const said = after.filter((b) => b.rows > 0).map((b) => `${fmtNum(b.mean_score, 2)} answered, ${fmtNum(b.observed, 2)} positive`).join('; ');
    return svg('svg', { class: 'chart reliability', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Reliability ${where}, by bin: ${said}` }, nodes);
  }

  // How far the probabilities answered are from the rates seen, on the
  // holdout: the reliability bins, and what calibration changed.
  function calibrationCard(v, live) {
    const headRow = h('div.card-head', null, h('h2', null, 'Calibration'),
      h('span.muted.small', null, 'the holdout\'s share positive against the probability answered, in ten bins'));
    if (!v) return [headRow, h('p.muted', null, 'No versions yet.')];
    const m = v.metrics || {};
    if (!Array.isArray(m.reliability)) {
      return [headRow, h('p.muted', null, `v${v.version} was trained before Kennel measured calibration: train again to see it.`)];
    }
    const c = m.calibration && typeof m.calibration === 'object' ? m.calibration : null;
    const rows = m.reliability.reduce((n, b) => n + b.rows, 0);
    // The binned error's floor on these rows: 0.1 on 30 rows is chance.
    const chance = Number.isFinite(m.calibration_error_by_chance) ? ` (a perfectly calibrated model's would be about ${fmtNum(m.calibration_error_by_chance, 3)} by chance)` : '';
    const said = `v${v.version}${v.version === live ? ' (live)' : ''}: Brier score ${fmtNum(m.brier, 4)}, calibration error ${fmtNum(m.calibration_error, 4)}${chance} on ${fmtNum(rows)} holdout rows`;
    const how = c
      ? `; calibrated by ${c.method} on ${fmtNum(c.fitted_on_rows)} out-of-fold training scores (before it: Brier score ${fmtNum(c.before.brier, 4)}, calibration error ${fmtNum(c.before.calibration_error, 4)}, log loss ${fmtNum(c.before.log_loss, 4)} against ${fmtNum(c.after.log_loss, 4)})`
      : '; not calibrated ("calibration": "sigmoid" or "isotonic" in the definition fits a map)';
    const before = c && c.before && Array.isArray(c.before.reliability) ? c.before.reliability : null;
    const binRows = m.reliability.map((b, i) => h('tr', { 'data-bin': i },
      h('td', null, `${fmtNum(b.lower, 1)}-${fmtNum(b.upper, 1)}`),
      h('td.num', null, fmtNum(b.rows)),
      h('td.num', null, fmtNum(b.mean_score, 3)),
      h('td.num', null, fmtNum(b.observed, 3)),
      before ? h('td.num', null, before[i] ? `${fmtNum(before[i].mean_score, 3)} / ${fmtNum(before[i].observed, 3)}` : '—') : null));
    return [
      headRow,
      h('p.muted.small', { id: 'calibration-summary' }, said, how),
      h('div.calibration-body', null,
        reliabilityChart(m.reliability, before),
        table(['Probability', { label: 'Rows', num: true }, { label: 'Mean answered', num: true }, { label: 'Share positive', num: true },
          before ? [{ label: 'Before: mean / share', num: true }] : []].flat(), binRows, { class: 'reliability-bins', label: `Reliability bins of v${v.version}` })),
      before ? h('p.muted.small', null, h('span.key-before', null, '○'), ' before calibration, ', h('span.key-after', null, '●'), ' as answered; the diagonal is where the probability answered is the share positive.') : null,
    ];
  }

  // Permutation importance on the holdout: how much worse the primary
  // metric gets when one field's values are shuffled among the rows.
  function importanceCard(v, live) {
      const headRow = h(
          'div.card-head', null, h('h2', null, 'What the model relies on'),
          h('span.muted.small', null,
            'each field\'s values shuffled among the holdout rows; how much worse the metric gets'));
      if (!v) return [headRow, h('p.muted', null, 'No versions yet.')];
      const imp = v.features && v.features.importance;
      if (!imp)
          return [
              headRow,
              h('p.muted', null,
                `v${v.version} was trained before Kennel measured importance: train again to see it.`)
          ];
      const top = Math.max(0, ...imp.fields.map((f) => f.drop));
      return [
          headRow,
          h('p.muted.small', null,
            `v${v.version}${v.version === live ? ' (live)' : ''}: ${imp.metric} ${
                fmtNum(imp.evaluated, 4)} on ${fmtNum(imp.rows)} holdout rows`,
            imp.complete ? '' : '; the time budget ran out before every field was measured'),
          table(
              [
                  'Field', {label: `${imp.metric} worse by`, num: true},
                  {label: `${imp.metric} shuffled`, num: true}, ''
              ],
              imp.fields.map(
                  (f) =>
                      h('tr', {'data-field': f.field}, h('td', null, f.field),
                        h('td.num', null, fmtNum(f.drop, 4)),
                        h('td.num', null, fmtNum(f.shuffled, 4)),
                        h('td', null, h('meter', {
                              min: 0,
                              max: top > 0 ? top : 1,
                              value: Math.max(0, f.drop),
                              'aria-label': `${f.field}: relative importance`
                          }))))),
      ];
  }

  // The model's supervision policy in a sentence: when a serving version is
  // taken out of service.
  function supervisionText(p) {
    if (!p) return '—';
    if (p.enabled === false) return 'supervision is off for this model';
    const rates = `error rate over ${fmtPct(p.max_error_rate)}, deadline misses over ${fmtPct(p.max_deadline_miss_rate)} or fallbacks over ${fmtPct(p.max_fallback_share)} in ${fmtDuration(p.window_seconds)} (once ${fmtNum(p.min_requests)} requests)`;
    const live = Object.entries(p.live_thresholds || {});
    if (!live.length) return `${rates}; no live-metric bound`;
    const delay = Number(p.outcome_delay_seconds) || 0;
    // A bound as written (0.00004 is not 0); a decision's rate waits for
    // min_outcomes of the rows it counts, from as many entities.
    const decisions = live.some(([k]) => isDecisionMetric(k)) ? `; a decision's rate once ${fmtNum(p.min_outcomes)} of the rows it counts, from as many entities` : '';
    return `${rates}; live ${live.map(([k, v]) => `${k} past ${exact(v)}`).join(', ')} on the newest 10,000 predictions ${fmtDuration(delay)} to ${fmtDuration(delay + Number(p.live_window_seconds))} old (once ${fmtNum(p.min_outcomes)} outcomes${decisions})`;
  }

  // One entry per version with all its roles: live's version is also an arm
  // in an experiment ("live", "arm:v1"), and serving counts it once.
  function mergeRoles(versions) {
    const out = [];
    for (const v of versions) {
      const seen = out.find((x) => x.version === v.version);
      const roles = v.roles || [v.role];
      if (seen) { for (const r of roles) if (!seen.roles.includes(r)) seen.roles.push(r); } else out.push({ ...v, roles: [...roles] });
    }
    return out;
  }

  // What each serving version is asked about against its training rows:
  // per field, the population stability index and the bin that moved most.
  function driftCard(d, live, serving) {
    const headRow = h('div.card-head', null, h('h2', null, 'Feature drift'),
      h('span.muted.small', null, 'served values against each version\'s training rows, its answers against those on the holdout (population stability index)'));
    if (d.error) return [headRow, errorBox(d.error, 'Feature drift')];
    const p = d.policy;
    if (!d.versions.length && serving && serving.down) {
      return [headRow, h('p.muted', null, `Live v${live} is ${serving.disabled ? 'disabled' : 'not serving'}: `,
        serving.fallback ? `v${serving.fallback} answers as a fallback, and drift is not counted for fallbacks.` : 'only the fallback answers, and it has no drift to watch.')];
    }
    if (!d.versions.length) return [headRow, h('p.muted', null, 'Nothing is served yet: drift is watched once a version is live.')];
    return [headRow,
      h('p.muted.small', null, `Drifted above ${fmtNum(p.max_feature_drift, 3)}, judged once ${fmtNum(p.min_drift_samples)} requests are in the window of ${fmtDuration(p.drift_window_seconds)}; `,
        p.retrain_on_drift ? 'drift queues a retraining job.' : 'drift is reported (retrain.on_drift is off).'),
      mergeRoles(d.versions).map((v) => {
        const title = h('h3', null, `v${v.version} (${v.roles.join(', ')}) `);
        if (v.problem) return h('div.drift-version', { 'data-version': v.version }, title, h('p.muted', null, v.problem));
        const r = v.window || v.since_loaded;
        const span = v.window ? `in the last ${fmtDuration(v.window.seconds)}` : 'since it was loaded';
        append(title, [badge(!r.enough_requests ? 'waiting' : r.drifted ? 'drifted' : 'stable')]);
        const state = (f) => (!r.enough_requests ? 'waiting' : f.psi > p.max_feature_drift ? 'drifted' : f.psi > 0.1 ? 'shift' : 'stable');
        const moved = (f) => {
          let best = null;
          f.bins.forEach((b) => { if (!best || Math.abs(b.observed - b.expected) > Math.abs(best.observed - best.expected)) best = b; });
          // A category value in quotes: one may be called "other" or "missing" too.
          const name = (b) => (b.kind === 'value' ? `"${b.bin}"` : b.bin);
          return best ? `${name(best)}: ${fmtPct(best.expected)} → ${fmtPct(best.observed)}` : '—';
        };
        return h('div.drift-version', { 'data-version': v.version }, title,
          h('p.muted.small', null, `${fmtNum(r.requests)} requests ${span}` +
            (r.enough_requests ? '' : `; ${fmtNum(p.min_drift_samples)} needed before drift is judged`)),
          table(['Field', { label: 'Stability index', num: true }, 'State', 'Largest move (training → served)'], [
            // The model's answers against its answers on the holdout.
            r.prediction ? h('tr', { 'data-output': 'prediction' },
              h('td', null, h('em', null, 'the answers')), h('td.num', null, r.prediction.answers ? fmtNum(r.prediction.psi, 3) : '—'),
              h('td', null, badge(r.prediction.answers < p.min_drift_samples ? 'waiting' : state(r.prediction))),
              h('td', null, r.prediction.answers ? moved(r.prediction) : '—')) : null,
            r.fields.slice().sort((a, b) => b.psi - a.psi).map((f) => h('tr', { 'data-field': f.field },
              h('td', null, f.field), h('td.num', null, r.requests ? fmtNum(f.psi, 3) : '—'),
              h('td', null, badge(state(f))), h('td', null, r.requests ? moved(f) : '—')))]));
      })];
  }

  // Active jobs (queued, running: progress and cancel) and finished ones
  // (result, version, error) get different columns.
  function jobsTable(jobs, { model = true } = {}) {
    const isActive = (j) => j.state === 'queued' || j.state === 'running';
    const active = jobs.length > 0 && jobs.every(isActive);
    const cols = ['Job', model ? 'Model' : null, 'State', active ? 'Progress' : 'Result', 'Trigger', 'Requested by', 'Created',
      { label: 'Duration', num: true }, active ? null : 'Version', active ? null : 'Error', active ? ACTIONS : null].filter((x) => x !== null);
    return table(cols, jobs.map((j) => {
      const cancel = isActive(j) ? h('button.small.danger', { type: 'button', 'data-action': 'cancel', 'aria-label': `${j.cancel_requested ? 'Cancelling' : 'Cancel'} job ${j.id}`, onclick: () => cancelJob(j) }, j.cancel_requested ? 'Cancelling…' : 'Cancel') : null;
      const progress = j.state === 'running'
        ? h('div', null, h('div.progress-cell', null, h('progress', { max: 1, value: j.progress || 0, 'aria-label': `Job ${j.id} progress` }), h('span.small', null, fmtPct(j.progress || 0))),
          h('div.small.muted.job-message', null, j.message || ''))
        : j.state === 'queued' ? h('span.muted.small', null, 'waiting for the trainer') : h('span.small.muted.job-message', null, jobResult(j));
      return h('tr', { 'data-job': j.id },
        h('td', null, h('a', { href: `#/jobs/${j.id}` }, `#${j.id}`)),
        model ? h('td', null, h('a', { href: `#/models/${enc(j.model)}` }, j.model)) : null,
        h('td', null, badge(j.state)),
        h('td', null, progress),
        h('td', null, j.trigger),
        h('td', null, j.requested_by),
        h('td', null, timeEl(j.created_at)),
        h('td.num', null, j.started_at ? fmtDuration(between(j.started_at, j.finished_at || new Date().toISOString())) : '—'),
        active ? null : h('td', null, j.version ? h('a', { href: `#/models/${enc(j.model)}` }, `v${j.version}`) : '—'),
        active ? null : h('td', null, j.error ? h('span.worse.small', null, j.error.length > 160 ? `${j.error.slice(0, 160)}…` : j.error) : ''),
        active ? h('td.cell-actions', null, cancel) : null);
    }));
  }

  // A finished job's last progress message is where it stopped, not what
  // it is doing: say so, or "never started" for one cancelled while queued.
  function jobResult(j) {
    if (j.state === 'succeeded') return j.message || 'done';
    if (!j.started_at) return 'never started';
    return `stopped at ${fmtPct(j.progress || 0)}${j.message ? ' · ' + j.message : ''}`;
  }

  function cancelJob(j) {
    return act({ title: `Cancel job ${j.id}?`, text: `Stops training ${j.model}. A cancelled job stores no version.`, confirm: 'Cancel job', reason: false, danger: true },
      () => api('POST', `/v1/jobs/${j.id}/cancel`, {}),
      (r) => `Cancel requested for job ${j.id}${r && r.state ? ` (now ${r.state})` : ''}`);
  }

  // What disabling a version does, said before it is done: with no earlier
  // enabled live version to answer, every answer is a fallback's; an arm's
  // share of an experiment falls back to live.
  function disableText(v, { live, rollbackTo, running }) {
    const parts = [];
    if (v.version === live) {
      parts.push(rollbackTo
        ? `It is live: v${rollbackTo}, the earlier live version, answers in its place at once (flagged as a fallback).`
        : 'It is live, and no earlier enabled live version can answer in its place: every answer will come from the baseline, the definition\'s constant or the label\'s prior (flagged as fallbacks).');
    } else {
      parts.push('It will not serve, even when an alias points at it.');
    }
    const arm = running && Array.isArray(running.arms) ? running.arms.find((a) => a.version === v.version) : null;
    if (arm && arm.shadow) parts.push(`It is a shadow arm of experiment ${running.id}: it stops being scored.`);
    else if (arm) parts.push(`It is arm ${arm.name} of experiment ${running.id}, with ${fmtPct(arm.weight)} of its traffic: live answers that share meanwhile.`);
    return parts.join(' ');
  }

  // What promoting a version does, with what argues against it: the gate
  // rejected it, or it scores worse than live on its holdout.
  function promoteText(v, { live, pm, versions, running }) {
    const parts = [`Moves the alias live to v${v.version}${live ? ` (from v${live})` : ''}. Serving swaps after the version is loaded and warmed up.`];
    if (v.status === 'rejected') parts.push(`The gate rejected it: ${gateText(v.gate)}.`);
    const liveV = versions.find((x) => x.version === live);
    const mine = numericMetrics(v.metrics)[pm.name];
    const theirs = liveV ? numericMetrics(liveV.metrics)[pm.name] : undefined;
    if (Number.isFinite(mine) && Number.isFinite(theirs) && (pm.higher ? mine < theirs : mine > theirs)) {
      parts.push(`Its ${pm.name} on its holdout, ${fmtNum(mine, 4)}, is worse than live v${live}'s, ${fmtNum(theirs, 4)}.`);
    }
    if (running) parts.push(`Experiment ${running.id} is running: its arms keep their versions; live answers requests without an entity, and the share of an arm that falls back.`);
    return parts.join(' ');
  }

  function versionsTable(name, versions, { pm, live, disabled, archived = false, rollbackTo = null, running = null }) {
    const sorted = versions.slice().sort((a, b) => b.version - a.version);
    if (!sorted.length) return [h('h2', null, 'Versions'), h('p.muted', null, 'No versions yet. Use "Train now"; the first version appears when its job finishes.')];
    const extraNames = [];
    // Calibration's metrics are on their own card, with the bins they come from.
    for (const v of sorted) for (const k of Object.keys(numericMetrics(v.metrics))) if (k !== pm.name && !isDecisionMetric(k) && !CALIBRATION_METRICS.includes(k) && !extraNames.includes(k)) extraNames.push(k);
    const extras = extraNames.slice(0, 4);
    const rows = sorted.map((v) => {
      const m = numericMetrics(v.metrics);
      const b = numericMetrics(v.baseline_metrics);
      const val = m[pm.name], base = b[pm.name];
      const better = Number.isFinite(val) && Number.isFinite(base) ? (pm.higher ? val > base : val < base) : null;
      const isDisabled = disabled.has(v.version);
      const isLive = v.version === live;
      const removed = v.artifact && v.artifact.removed_at;
      const cannot = removed ? `Its artifact was removed by retention (${fmtTime(removed)}): it cannot serve` : isDisabled ? 'Enable it first' : isLive ? 'It is live' : null;
      // The reason is in the name too: a disabled button takes no focus,
      // so its tooltip was out of a keyboard's reach.
      const promote = h('button.small', { type: 'button', 'data-action': 'promote', 'aria-label': `Promote v${v.version}${cannot ? ` (${cannot})` : ''}`, disabled: isLive || isDisabled || !!removed,
        title: cannot,
        onclick: () => act({ title: `Promote v${v.version} of ${name} to live`, text: promoteText(v, { live, pm, versions, running }), confirm: 'Promote', placeholder: 'e.g. reviewed the holdout metrics' },
          (reason) => api('PUT', `/v1/models/${enc(name)}/aliases/live`, { version: v.version, reason },
            live ? { 'If-Match': `"v${live}"` } : { 'If-None-Match': '*' }),
          (r) => `Promoted ${name} v${r.version} to live`) }, 'Promote');
      const toggle = isDisabled
        ? h('button.small', { type: 'button', 'data-action': 'enable', 'aria-label': `Enable v${v.version}`,
          onclick: () => act({ title: `Enable v${v.version} of ${name}`, text: 'It may serve again (when an alias points at it).', confirm: 'Enable' },
            (reason) => api('POST', `/v1/models/${enc(name)}/versions/${v.version}/enable`, { reason }),
            (r) => `${r.changed === false ? `${name} v${r.version} was enabled already (by someone else meanwhile?): nothing changed` : `Enabled ${name} v${r.version}`}${r.serving_version ? `; serving v${r.serving_version}` : ''}`) }, 'Enable')
        : h('button.small.danger', { type: 'button', 'data-action': 'disable', 'aria-label': `Disable v${v.version}`,
          onclick: () => act({ title: `Disable v${v.version} of ${name}`, text: disableText(v, { live, rollbackTo, running }), confirm: 'Disable', danger: true },
            (reason) => api('POST', `/v1/models/${enc(name)}/versions/${v.version}/disable`, { reason }),
            (r) => `${r.changed === false ? `${name} v${r.version} was disabled already (by someone else meanwhile?): nothing changed` : `Disabled ${name} v${r.version}`}${r.serving_version ? `; serving v${r.serving_version}` : '; serving falls back'}`) }, 'Disable');
      const snap = v.snapshot || {};
      return h('tr', { 'data-version': v.version, class: isLive ? 'selected' : null },
        h('td', { title: `created ${fmtTime(v.created_at)}` }, h('strong', null, `v${v.version}`)),
        // The gate's verdict matters for versions that do not serve; the live one says live.
        h('td', null, badge(isDisabled ? 'disabled' : isLive ? 'live' : v.status), ' ',
          (v.aliases || []).filter((a) => a !== 'live').map((a) => h('span.chip', null, badge(a, 'info'))),
          isLive && isDisabled ? h('span.chip', null, badge('live', 'info')) : null,
          removed ? h('span.chip', { title: `removed ${fmtTime(removed)} (serve --keep-versions)` }, badge('artifact removed')) : null),
        h('td', null, v.algorithm, thresholdText(v.metrics) ? [h('br'), h('span.small.muted.decision', { title: thresholdTitle(v.metrics) }, thresholdText(v.metrics))] : null,
          calibrationText(v.metrics) ? [h('br'), h('span.small.muted.calibrated', null, calibrationText(v.metrics))] : null),
        h('td.num', null, h('span', { class: better === null ? null : better ? 'better' : 'worse' }, fmtNum(val, 4), sayBetter(better))),
        h('td.num', null, fmtNum(base, 4)),
        extras.map((k) => h('td.num', null, fmtNum(m[k], 4))),
        h('td.gate', null, gateText(v.gate)),
        h('td.small.lineage', null, `revision ${v.revision} · `, v.job ? h('a', { href: `#/jobs/${v.job}` }, `job #${v.job}`) : 'no job',
          h('br'), h('span.muted', null, snapshotText(snap, true)),
          snap.holdout_from ? [h('br'), h('span.muted', { title: snap.split_rule || null }, 'holdout by time')] : null),
        // An archived model takes neither (the server answers 409): Restore first.
        h('td.cell-actions', null, archived ? null : [promote, toggle]));
    });
    return [
      h('div.card-head', null, h('h2', null, 'Versions'), h('span.muted.small', null, 'Metrics on the holdout, the baseline beside them. Lineage: the definition revision, the job, the snapshot of facts.')),
      table(['Version', 'Status', 'Algorithm', { label: pm.name, num: true }, { label: `baseline ${pm.name}`, num: true },
        extras.map((k) => ({ label: k, num: true })), 'Gate', 'Lineage', ACTIONS].flat(), rows, { class: 'versions', label: `Versions of ${name}` }),
    ];
  }

  function compareTable(a, b, task) {
    const pm = primaryMetric(task);
    const ma = numericMetrics(a.metrics), mb = numericMetrics(b.metrics);
    const ba = numericMetrics(a.baseline_metrics), bb = numericMetrics(b.baseline_metrics);
    const names = [...new Set([...Object.keys(ma), ...Object.keys(mb)])].sort((x, y) => (x === pm.name ? -1 : y === pm.name ? 1 : x.localeCompare(y)));
    const cmp = (k, x, y) => {
      if (!Number.isFinite(x) || !Number.isFinite(y) || x === y) return [null, null];
      const hi = higherIsBetter(k);
      const xBetter = hi ? x > y : x < y;
      return [xBetter ? 'better' : 'worse', xBetter ? 'worse' : 'better'];
    };
    const rows = [];
    const said = (c) => (c ? sayBetter(c === 'better') : null);
    const row = (label, x, y, cls = [null, null]) => rows.push(h('tr', null, h('th', { scope: 'row' }, label),
      h('td', null, h('span', { class: cls[0] }, x, said(cls[0]))), h('td', null, h('span', { class: cls[1] }, y, said(cls[1])))));
    row('status', a.status, b.status);
    row('aliases', (a.aliases || []).join(', ') || '—', (b.aliases || []).join(', ') || '—');
    row('algorithm', a.algorithm, b.algorithm);
    row('params', paramsText(a), paramsText(b));
    if (thresholdText(a.metrics) || thresholdText(b.metrics)) row('decision threshold', thresholdText(a.metrics) || '—', thresholdText(b.metrics) || '—');
    if (calibrationText(a.metrics) || calibrationText(b.metrics)) row('calibration', calibrationText(a.metrics) || 'none', calibrationText(b.metrics) || 'none');
    row('search', searchText(a.params), searchText(b.params));
    for (const k of names) row(k, fmtNum(ma[k], 4), fmtNum(mb[k], 4), cmp(k, ma[k], mb[k]));
    row(`baseline ${pm.name}`, fmtNum(ba[pm.name], 4), fmtNum(bb[pm.name], 4));
    row('gate', gateText(a.gate), gateText(b.gate));
    row('revision', `r${a.revision}`, `r${b.revision}`);
    row('job', a.job ? `#${a.job}` : '—', b.job ? `#${b.job}` : '—');
    row('snapshot', snapshotText(a.snapshot), snapshotText(b.snapshot));
    // The list counts a version's columns; one version read alone names them.
    const columnCount = (v) => (!v.features ? null : Array.isArray(v.features.names) ? v.features.names.length
      : typeof v.features.columns === 'number' ? v.features.columns : null);
    const feats = (v) => (columnCount(v) !== null
      ? `${fmtNum(columnCount(v))} columns${(v.features.warnings || []).length ? `, ${v.features.warnings.length} dropped-column notes` : ''}`
      : jsonText(v.features));
    row('feature columns', feats(a), feats(b));
    row('split rule', (a.snapshot && a.snapshot.split_rule) || '—', (b.snapshot && b.snapshot.split_rule) || '—');
    row('timings', timingsText(a.timings), timingsText(b.timings));
    const artifactText = (v) => (v.artifact ? `${String(v.artifact.sha256).slice(0, 12)}… (${fmtNum(v.artifact.bytes)} B${v.artifact.removed_at ? `, removed ${fmtTime(v.artifact.removed_at)}` : ''})` : '—');
    row('artifact', artifactText(a), artifactText(b));
    row('created', fmtTime(a.created_at), fmtTime(b.created_at));
    const sa = a.snapshot || {}, sb = b.snapshot || {};
    const sameHoldout = sa.split_rule === sb.split_rule && sa.max_fact_id === sb.max_fact_id;
    return [
      h('p.muted.small', null, 'The holdout is chosen by the split rule (a hash of the entity, or the newest labels by time): ',
        sameHoldout ? 'these two versions share the split rule and the snapshot, so they were scored on the same holdout rows.'
          : 'these two versions differ in split rule or snapshot, so their holdout rows differ; the gate of the newer one scored the live version on its own holdout, leaving out rows live trained on (its gate says when none was left).'),
      h('div.table-wrap', { 'data-scrolls': `v${a.version} beside v${b.version}` }, h('table.compare', null,
        h('colgroup', null, h('col.c-label'), h('col.c-value'), h('col.c-value')),
        h('thead', null, h('tr', null, h('th', null, ''), h('th', null, `v${a.version}`), h('th', null, `v${b.version}`))),
        h('tbody', null, rows))),
    ];
  }

  // Where a JSON text stops parsing, in words ("Line 3, column 5: expected
  // , or }"), or null when it parses. A small scanner, since the browser's
  // own message gives a character offset at best.
  function jsonProblem(text) {
    try { JSON.parse(text); return null; } catch (e) { /* find where, below */ }
    let i = 0;
    const fail = (what) => { throw { at: i, what: i >= text.length ? 'the text ends too early' : what }; };
    const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i += 1; };
    const lit = (word) => { if (text.startsWith(word, i)) i += word.length; else fail('expected a value (a string, number, object, array, true, false or null)'); };
    const str = () => {
      i += 1;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\') i += 1;
        else if (text[i] < ' ') fail('a line break inside a string');
        i += 1;
      }
      if (i >= text.length) fail('a string is not closed');
      i += 1;
    };
    const value = () => {
      ws();
      const c = text[i];
      if (c === '{' || c === '[') {
        const close = c === '{' ? '}' : ']';
        i += 1; ws();
        if (text[i] === close) { i += 1; return; }
        for (;;) {
          if (c === '{') {
            ws();
            if (text[i] !== '"') fail('expected a "quoted" field name');
            str(); ws();
            if (text[i] !== ':') fail('expected : after the field name');
            i += 1;
          }
          value(); ws();
          if (text[i] === ',') { i += 1; continue; }
          if (text[i] === close) { i += 1; return; }
          fail(`expected , or ${close}`);
        }
      }
      if (c === '"') return str();
      const num = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
      if (num) { i += num[0].length; return; }
      if (c === 't') return lit('true');
      if (c === 'f') return lit('false');
      if (c === 'n') return lit('null');
      return fail(i >= text.length ? 'the text ends too early' : 'expected a value (a string, number, object, array, true, false or null)');
    };
    let at = text.length, what = 'not valid JSON';
    try {
      value(); ws();
      if (i < text.length) fail('unexpected text after the end');
    } catch (e) {
      if (e && e.at !== undefined) ({ at, what } = e);
    }
    const before = text.slice(0, at);
    return `Line ${before.split('\n').length}, column ${at - before.lastIndexOf('\n')}: ${what}.`;
  }

  function drawDefinition(box, name, model, ctx) {
    const area = h('textarea.code', { id: 'definition', spellcheck: 'false', 'aria-label': `Definition of ${name}` });
    area.value = JSON.stringify(model.definition, null, 2);
    // The revision the text was loaded from (the label below follows the
    // server's): a save names it in If-Match, so a revision saved meanwhile
    // by someone else is never overwritten unseen.
    let base = model.revision;
    const errs = h('div', { id: 'definition-errors' });
    // An edit not saved is kept in this tab (sessionStorage) with the
    // revision it began from: leaving the page, or a session that ended
    // and a sign-in, lost it without a word. Saved or reset, it goes.
    const draftKey = `kennel-definition-draft:${name}`;
    const loaded = () => area.value === JSON.stringify(model.definition, null, 2) && base === model.revision;
    const keepDraft = () => {
      try {
        if (loaded()) sessionStorage.removeItem(draftKey);
        else sessionStorage.setItem(draftKey, JSON.stringify({ base, text: area.value }));
      } catch (e) { /* storage off or full: the edit stays on the page only */ }
    };
    const dropDraft = () => { try { sessionStorage.removeItem(draftKey); } catch (e) { /* none kept */ } };
    area.addEventListener('input', keepDraft);
    let restored = null;
    try {
      const draft = JSON.parse(sessionStorage.getItem(draftKey) || 'null');
      if (draft && typeof draft.text === 'string' && Number.isInteger(draft.base) && draft.text !== area.value) {
        area.value = draft.text;
        base = draft.base;
        restored = h('div.alert.info', { role: 'status', id: 'definition-draft' },
          `Your edit of revision ${draft.base}, not saved yet, is back. Save it, or Reset to drop it.`);
      }
    } catch (e) { /* an unreadable draft is no draft */ }
    if (restored) replace(errs, restored);
    const save = h('button.primary', { type: 'button', 'data-action': 'save-definition' }, 'Save definition');
    const reset = h('button', { type: 'button', 'data-action': 'reset-definition' }, 'Reset');
    reset.addEventListener('click', async () => {
      try {
        const m = await get(`/v1/models/${enc(name)}`);
        area.value = JSON.stringify(m.definition, null, 2);
        base = m.revision;
        area.classList.remove('invalid');
        replace(errs);
        dropDraft();
      } catch (err) { replace(errs, errorBox(err)); }
    });
    const revision = h('span.muted.small', { id: 'definition-revision', 'data-revision': model.revision }, `revision ${model.revision}`);
    save.addEventListener('click', async () => {
      replace(errs);
      const bad = jsonProblem(area.value);
      if (bad) {
        area.classList.add('invalid');
        replace(errs, h('div.alert.error', { role: 'alert' }, h('div.title', null, 'This is not valid JSON, so nothing was sent.'), bad));
        return;
      }
      save.disabled = true;
      try {
        const r = await api('PUT', `/v1/models/${enc(name)}`, area.value, { 'If-Match': `"r${base}"` });
        area.classList.remove('invalid');
        area.value = JSON.stringify(r.definition, null, 2);
        base = r.revision;
        dropDraft();
        revision.textContent = `revision ${r.revision}`;
        revision.dataset.revision = r.revision;
        replace(errs, h('div.alert.success', null, r.new_revision ? `Saved: revision ${r.revision} of ${name}. The next training run uses it.` : `No change: the definition equals revision ${r.revision}.`));
        flash(r.new_revision ? `Saved revision ${r.revision} of ${name}` : 'Definition unchanged');
        await refreshNow();
      } catch (err) {
        if (err instanceof ApiError && err.status === 412) {
          // Someone saved meanwhile: this text stays, theirs is not lost.
          const now = /"r(\d+)"/.exec(err.message);
          replace(errs, h('div.alert.warn', { role: 'alert', id: 'definition-stale' },
            h('div.title', null, `Not saved: ${now ? `revision ${now[1]}` : 'a newer revision'} was saved while you edited revision ${base}.`),
            h('div', null, 'Your text is still here. Copy what you changed, press Reset to load the newest revision, and make your change there.')));
          return;
        }
        area.classList.add('invalid');
        const n = err.details.length;
        replace(errs, err instanceof ApiError && err.status === 400
          ? h('div.alert.error', { role: 'alert' },
            h('div.title', null, n > 1 ? `The server found ${n} problems in the definition:` : 'The server refused the definition:'),
            n ? fieldErrorList(err.details) : h('div', null, err.field ? [h('code', null, err.field), ': '] : null, err.message))
          : errorBox(err, 'Could not save the definition'));
      } finally {
        save.disabled = false;
        refocus(save);
      }
    });
    if (!ctx.alive()) return;
    replace(box,
      h('div.card-head', null, h('h2', null, 'Definition'), revision),
      h('p.muted.small', null, 'Edit the JSON and save: the server checks it and names each field it refuses. A change makes a new revision.'),
      area, errs, h('div.actions', null, save, reset));
  }

  // A request body to send as an app would, prefilled with the newest fact
  // of the model's features stream; the answer shown as the API gave it.
  async function drawTryPrediction(box, name, model, ctx) {
    const area = h('textarea.code', { id: 'try-body', rows: 8, spellcheck: 'false', 'aria-label': `Prediction request for ${name}` });
    const answer = h('div', { id: 'try-answer', role: 'status' });
    const send = h('button.primary', { type: 'button', 'data-action': 'try-predict' }, 'Predict');
    const explainBox = h('input', { type: 'checkbox', id: 'try-explain', checked: true });
    const storedBox = h('input', { type: 'checkbox', id: 'try-stored' });
    send.addEventListener('click', async () => {
      send.disabled = true;
      try {
        // "explain" added to the object sent; a body that is not an object
        // goes as typed, for the server to say what is wrong with it.
        let body = area.value;
        try {
          const parsed = JSON.parse(body);
          if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
            if (!('explain' in parsed)) parsed.explain = explainBox.checked;
            // The entity's stored features fill what the body leaves out.
            if (storedBox.checked && !('instances' in parsed) && !('stored_features' in parsed)) parsed.stored_features = true;
            body = JSON.stringify(parsed);
          }
        } catch (err) { /* sent as typed */ }
        const r = await api('POST', `/v1/models/${enc(name)}/predict`, body);
        replace(answer, predictionAnswer(r));
      } catch (err) {
        replace(answer, errorBox(err, 'The server refused the request'));
      } finally {
        send.disabled = false;
        refocus(send);
      }
    });
    let example = { entity: 'example-1', features: {} };
    const stream = model.definition && model.definition.features_from;
    if (stream) {
      try {
        const f = await get(`/v1/streams/${enc(stream)}/facts?limit=1&order=desc`);
        if (f.facts.length) example = { entity: f.facts[0].entity, features: f.facts[0].data };
      } catch (err) { /* an empty example then */ }
    }
    if (!ctx.alive()) return;
    area.value = JSON.stringify(example, null, 2);
    replace(box,
      h('h2', null, 'Try a prediction'),
      h('p.muted.small', null, `Sends the body to POST /v1/models/${name}/predict as an app would (the newest fact of "${stream || '?'}" to start with): a real answer, logged like any other.`),
      area, h('div.actions', null, send,
        h('label.inline', { for: 'try-explain', title: 'Each field\'s share of the answer, against the version\'s training rows' }, explainBox, ' Explain the answer'),
        h('label.inline', { for: 'try-stored', title: 'Fields the body leaves out come from the entity\'s newest fact' }, storedBox, ' Use the entity\'s stored features')),
      answer);
  }

  // An answer's explanation: each field's share of the answer against the
  // mean answer over training rows, as a signed bar, largest first.
  function explanationView(e) {
    if (!e) return null;
    if (!e.available) return h('p.muted.small', { 'data-explanation': 'none' }, `No explanation: ${e.reason}.`);
    const of = e.output === 'probability' ? `the probability of "${e.class}"` : 'the value';
    const largest = Math.max(1e-300, ...e.contributions.map((c) => Math.abs(c.contribution)));
    const digits = e.output === 'probability' ? 3 : 4;
    const rows = e.contributions.map((c) => {
      const share = Math.abs(c.contribution) / largest;
      const bar = h(`span.contrib-bar.${c.contribution < 0 ? 'down' : 'up'}`);
      bar.style.width = `${(share * 50).toFixed(1)}%`;  // CSSOM: the CSP refuses style attributes
      return h('tr', { 'data-field': c.field },
        h('td', null, c.field),
        h('td', null, c.value === null ? h('span.muted', null, 'imputed') : valueText(c.value)),
        h('td.num', null, `${c.contribution > 0 ? '+' : ''}${fmtNum(c.contribution, digits)}`,
          e.method === 'sampled' ? h('span.muted.small', null, ` ± ${fmtNum(1.96 * c.error, digits)}`) : null),
        h('td.contrib', null, h('span.contrib-axis', null, bar)));
    });
    return h('div.explanation', { 'data-explanation': e.method },
      h('p.small', null, `Why ${of} is ${fmtNum(e.value, digits)}: it starts from ${fmtNum(e.base_value, digits)}, the mean answer of v${e.version} over ${fmtNum(e.background_rows)} training rows, and each field moves it by its share.`),
      h('table.explain', null,
        h('thead', null, h('tr', null, h('th', null, 'field'), h('th', null, 'value'), h('th.num', null, 'share'), h('th', null, h('span.sr-only', null, 'bar')))),
        h('tbody', null, rows)),
      h('p.muted.small', null, e.method === 'exact'
        ? `Exact Shapley values: every subset of the fields against every row (${fmtNum(e.evaluations)} predictions, ${fmtMs(e.ms)} ms).`
        : `Shapley values estimated from ${fmtNum(e.samples)} orders of the fields (${fmtNum(e.evaluations)} predictions, ${fmtMs(e.ms)} ms); ± is a 95% margin of the estimate.`));
  }

  function predictionAnswer(r) {
    const one = (p) => h('dl.kv', null,
      h('dt', null, 'prediction'), h('dd', null, h('strong', null, valueText(p.prediction))),
      p.probabilities ? [h('dt', null, 'probabilities'), h('dd', null, Object.entries(p.probabilities).map(([k, v]) => `${k} ${fmtNum(v, 3)}`).join(' · '))] : null,
      p.decision !== undefined ? [h('dt', null, 'decision'), h('dd', null, String(p.decision))] : null,
      h('dt', null, 'answered by'), h('dd', null, p.version ? `v${p.version}` : 'no version', ` (${p.arm})`),
      h('dt', null, 'fallback'), h('dd', null, p.fallback ? h('span.worse', null, `${p.fallback_reason} → ${p.answered_by}`) : 'no'),
      h('dt', null, 'latency'), h('dd', null, `${fmtMs(p.latency_ms, 3)} ms`),
      p.ignored_fields ? [h('dt', null, 'ignored'), h('dd', null, p.ignored_fields.join(', '))] : null,
      p.imputed_fields ? [h('dt', null, 'imputed'), h('dd', null, p.imputed_fields.join(', '))] : null,
      p.stored_features ? [h('dt', null, 'stored'), h('dd', { 'data-stored': p.stored_features.fact === null ? 'none' : p.stored_features.fact },
        p.stored_features.fact === null ? `no fact of this entity in "${p.stored_features.stream}"`
          : `${p.stored_features.fields.length ? p.stored_features.fields.join(', ') : 'nothing'} from fact ${p.stored_features.fact} of "${p.stored_features.stream}" (${p.stored_features.time})`)] : null,
      p.aggregates ? [h('dt', null, 'from history'), h('dd', { 'data-aggregates': Object.keys(p.aggregates.values).length },
        Object.keys(p.aggregates.values).length
          ? `${Object.entries(p.aggregates.values).map(([k, v]) => `${k} ${v === null ? 'none (imputed)' : valueText(v)}`).join(' · ')} (before ${p.aggregates.as_of})`
          : `all sent (before ${p.aggregates.as_of})`)] : null,
      h('dt', null, 'prediction id'), h('dd', null, h('code', null, p.prediction_id)));
    return (r.predictions || [r]).map((p) => [one(p), explanationView(p.explanation)]);
  }

  // ---- jobs

  function viewJobs(root) {
    const activeBox = h('div.card', null, loading());
    const doneBox = h('div.card');
    replace(root, pageHead('Jobs', 'Training runs: queued, running (live progress) and finished, with their log and error.'), activeBox, doneBox);
    const drawActive = liveRegion(activeBox);
    const drawDone = liveRegion(doneBox);
    // Active and finished jobs are asked for apart: in one list of the
    // newest 100, older jobs were out of reach and 100 queued ones hid the
    // running one.
    let doneLimit = 100;
    const refresh = async () => {
      const [a, d] = await Promise.all([
        get('/v1/jobs?state=running,queued&limit=1000'),
        get(`/v1/jobs?state=succeeded,failed,cancelled,timed_out,interrupted&limit=${doneLimit}`),
      ]);
      // The running job first, then the queue in the order it will run.
      const active = a.jobs.slice().sort((x, y) => (x.state === y.state ? x.id - y.id : x.state === 'running' ? -1 : 1));
      drawActive({ active, more: a.next_before, s: active.some((j) => j.state === 'running') ? Math.floor(Date.now() / 1000) : 0 }, () => [
        h('h2', null, 'Running and queued'),
        active.length ? jobsTable(active) : h('p.muted', { 'data-empty': 'active' }, 'Nothing is training now. Start a run with "Train now" on a model\'s page.'),
        a.next_before ? h('p.muted.small', null, `Only the newest ${active.length} active jobs are shown.`) : null]);
      drawDone({ jobs: d.jobs, more: d.next_before }, () => [
        h('div.card-head', null, h('h2', null, 'Finished'), h('span.muted.small', null, `${d.jobs.length} newest shown`)),
        d.jobs.length ? jobsTable(d.jobs) : h('p.muted', null, 'No finished jobs yet.'),
        d.next_before && doneLimit < 1000 ? h('button.small', { type: 'button', 'data-action': 'more-jobs',
          onclick: () => { doneLimit = Math.min(1000, doneLimit + 100); refresh(); } }, 'Show 100 older') : null,
        d.next_before && doneLimit >= 1000 ? h('p.muted.small', null, 'Older jobs: GET /v1/jobs?before=<id> pages on.') : null]);
    };
    return { refresh };
  }

  function viewJob(root, params) {
    const id = Number(params.id);
    const head = h('div');
    const info = h('div.card', null, loading());
    const logBox = h('div.card');
    replace(root, head, info, logBox);
    const drawHead = liveRegion(head);
    const drawInfo = liveRegion(info);
    const drawLog = liveRegion(logBox);
    let gone = false;
    const refresh = async () => {
      if (gone) return;
      let j;
      try {
        j = await get(`/v1/jobs/${id}`);
      } catch (err) {
        // A job that does not exist: one message, and no more asking (it
        // showed an error above a "Loading…" that never ended).
        if (!(err instanceof ApiError && (err.status === 404 || err.status === 400))) throw err;
        gone = true;
        replace(root, pageHead([h('div.crumbs', null, h('a', { href: '#/jobs' }, 'Jobs'), ' / '), `Job ${params.id}`]),
          h('div.card', null, h('div.alert.error', { role: 'alert', id: 'job-missing' }, `There is no job ${params.id}. `, h('a', { href: '#/jobs' }, 'All jobs →'))));
        return;
      }
      const activeJob = j.state === 'queued' || j.state === 'running';
      drawHead({ state: j.state, model: j.model, c: j.cancel_requested }, () => pageHead(
        [h('div.crumbs', null, h('a', { href: '#/jobs' }, 'Jobs'), ' / '), `Job ${j.id} `, badge(j.state)],
        [`Training `, h('a', { href: `#/models/${enc(j.model)}` }, j.model), ` · revision ${j.revision}`],
        activeJob ? h('button.danger', { type: 'button', 'data-action': 'cancel', onclick: () => cancelJob(j) }, j.cancel_requested ? 'Cancelling…' : 'Cancel job') : null));
      const { log, ...rest } = j;
      drawInfo(rest, () => [
        j.state === 'running' ? h('div.progress-cell', null, h('progress', { max: 1, value: j.progress || 0, 'aria-label': `Job ${j.id} progress` }), `${fmtPct(j.progress)} · ${j.message || ''}`) : null,
        j.error ? h('div.alert.error', null, h('div.title', null, 'Error'), j.error) : null,
        h('dl.kv', null,
          h('dt', null, 'trigger'), h('dd', null, j.trigger),
          h('dt', null, 'requested by'), h('dd', null, j.requested_by),
          h('dt', null, 'created'), h('dd', null, timeEl(j.created_at)),
          h('dt', null, 'started'), h('dd', null, timeEl(j.started_at)),
          h('dt', null, 'finished'), h('dd', null, timeEl(j.finished_at)),
          h('dt', null, 'duration'), h('dd', null, j.started_at ? fmtDuration(between(j.started_at, j.finished_at || new Date().toISOString())) : '—'),
          h('dt', null, activeJob ? 'message' : 'result'), h('dd', null, activeJob ? j.message || '—' : jobResult(j)),
          h('dt', null, 'version'), h('dd', null, j.version ? h('a', { href: `#/models/${enc(j.model)}` }, `v${j.version}`) : '—'),
          j.requeued_from ? [h('dt', null, 'requeued from'), h('dd', null, h('a', { href: `#/jobs/${j.requeued_from}` }, `job ${j.requeued_from}`))] : null,
          h('dt', null, 'progress'), h('dd', null, fmtPct(j.progress))),
      ]);
      drawLog(log, () => [
        h('h2', null, 'Log'),
        log.length ? h('div.log', { id: 'job-log', 'data-scrolls': 'Job log' }, log.map((l) => h(`div.${l.level}`, null, h('span.t', null, fmtTime(l.time)), `${l.level === 'info' ? '' : l.level.toUpperCase() + ' '}${l.message}`)))
          : h('p.muted', null, 'No log lines yet.')]);
    };
    return { refresh };
  }

  // ---- deployments

  function viewDeployments(root, params, ctx) {
    const head = h('div', null, pageHead('Deployments', loading()));
    const body = h('div');
    replace(root, head, body);
    const state = { model: params.name || null, regions: null };
    const setup = async () => {
      const list = await get('/v1/models');
      if (!ctx.alive()) return false;
      if (!list.models.length) {
        replace(head, pageHead('Deployments', 'Alias moves, version events, the supervisor and experiments.'));
        replace(body, h('div.card', null, emptyModels()));
        return false;
      }
      // A name in the address that is no model is said, not silently swapped.
      const unknown = state.model && !list.models.some((m) => m.name === state.model) ? state.model : null;
      if (!state.model || unknown) state.model = list.models[0].name;
      const sel = h('select', { 'aria-label': 'Model', id: 'deploy-model' }, list.models.map((m) => h('option', { value: m.name, selected: m.name === state.model }, m.name)));
      sel.addEventListener('change', () => { location.hash = `#/deployments/${enc(sel.value)}`; });
      replace(head, pageHead('Deployments', 'What served when, who moved it and why; the supervisor\'s actions; experiments.', h('label.inline', null, 'Model', sel)),
        unknown ? h('div.alert.warn', { id: 'deploy-unknown' }, `There is no model named "${unknown}"; showing ${state.model}.`) : null);
      const r = {
        aliases: h('div.card'), history: h('div.card'), events: h('div.card'), supervisor: h('div.card'),
        experiments: h('div.card'), live: h('div.card'), start: h('div.card'),
      };
      // The prediction log: its filter sits outside the region the poll
      // redraws, so typing is never interrupted.
      const entity = h('input', { type: 'search', id: 'prediction-entity', placeholder: 'all entities', value: state.entity || '' });
      entity.addEventListener('change', () => { state.entity = entity.value.trim(); refresh(); });
      const predictionsBody = h('div');
      const predictionsCard = h('div.card', { id: 'recent-predictions' },
        h('div.card-head', null, h('h2', null, 'Recent predictions'), h('label.inline', null, 'Entity', entity)),
        h('p.muted.small', null, 'The prediction log, newest first: who answered, how, and the outcome each prediction was joined to.'),
        predictionsBody);
      replace(body, h('div.two-col', null, r.aliases, r.supervisor), h('div'), r.history, r.events, r.experiments, r.live, predictionsCard, r.start);
      r.predictions = predictionsBody;
      state.regions = Object.fromEntries(Object.entries(r).map(([k, el]) => [k, liveRegion(el)]));
      state.startBox = r.start;
      return true;
    };
    let ready = null;
    const refresh = async () => {
      if (ready === null) ready = await setup();
      if (!ready) return;
      const name = state.model;
      const logQuery = `limit=20${state.entity ? `&entity=${enc(state.entity)}` : ''}`;
      const [al, dep, ev, ex, lm, sv, vs, pl, md] = await Promise.all([
        get(`/v1/models/${enc(name)}/aliases`),
        get(`/v1/models/${enc(name)}/deployments`),
        get(`/v1/models/${enc(name)}/events`).catch((e) => ({ error: e })),
        get(`/v1/models/${enc(name)}/experiments`).catch((e) => ({ error: e })),
        // Up to 10 s old: the join is the costliest read of the page, and
        // every open page shares one computation (?max_age=).
        get(`/v1/models/${enc(name)}/live-metrics?max_age=${LIVE_METRICS_MAX_AGE_S}`).catch((e) => ({ error: e })),
        get(`/v1/serving?model=${enc(name)}`).catch((e) => ({ error: e })),
        get(`/v1/models/${enc(name)}/versions`),
        get(`/v1/models/${enc(name)}/predictions?${logQuery}`).catch((e) => ({ error: e })),
        get(`/v1/models/${enc(name)}`).catch((e) => ({ error: e })),
      ]);
      if (!ctx.alive()) return;
      const R = state.regions;
      const definition = md.error ? null : md.definition;
      R.predictions({ pl, entity: state.entity, definition }, () => recentPredictions(name, pl, state.entity, definition));
      R.aliases(al, () => [h('h2', null, 'Aliases now'),
        al.aliases.length ? table(['Alias', 'Version', 'Since'], al.aliases.map((a) => h('tr', null,
          h('td', null, badge(a.alias, a.alias === 'live' ? 'ok' : 'info')), h('td', null, `v${a.version}`), h('td', null, timeEl(a.updated_at)))))
          : h('p.muted', null, 'No alias yet: nothing serves until a version is promoted.')]);
      const svModel = sv.error ? null : (sv.models || []).find((m) => m.model === name);
      const sup = sv.error ? null : sv.supervisor;
      const policy = md.error ? null : (md.definition || {}).supervision;
      R.supervisor({ svModel, policy, sup: sup && { ...sup, last_tick: undefined, ticks: undefined }, err: sv.error && sv.error.message }, () => [
        h('h2', null, 'Serving and supervisor'),
        sv.error ? errorBox(sv.error) : [
          h('dl.kv', null,
            h('dt', null, 'serving version'), h('dd', null, svModel && svModel.serving_version ? `v${svModel.serving_version}` : '—'),
            h('dt', null, 'live alias'), h('dd', null, svModel && svModel.live_alias ? `v${svModel.live_alias}` : '—'),
            h('dt', null, 'problem'), h('dd', null, svModel && svModel.problem ? h('span.worse', null, svModel.problem) : 'none'),
            h('dt', null, 'supervisor'), h('dd', null, sup ? badge(sup.state) : '—'),
            h('dt', null, 'bounds'), h('dd.supervision-policy', null, supervisionText(policy))),
          h('h3', null, 'Supervisor actions'),
          sup && (sup.actions || []).filter((a) => a.model === name).length
            ? table(['Time', 'Version', 'Outcome', 'Why'], sup.actions.filter((a) => a.model === name).map((a) => h('tr', null,
              h('td', null, timeEl(a.time)), h('td', null, `v${a.version}`), h('td.text', null, a.outcome), h('td.text', null, a.reason))))
            : h('p.muted.small', null, 'The supervisor has not acted on this model.')]]);
      R.history(dep, () => [
        h('h2', null, 'Alias history'),
        // The API answers the newest 500: say so rather than cut the history silently.
        h('p.muted.small', null, dep.deployments.length >= 500 ? 'The newest 500 moves of an alias, newest first (older ones are kept; the API lists 500).' : 'Every move of an alias, newest first: append-only.'),
        dep.deployments.length ? table(['Time', 'Alias', 'Change', 'Who', 'Why'], dep.deployments.map((d) => h('tr', { 'data-deployment': d.id },
          h('td', null, timeEl(d.time)),
          h('td', null, badge(d.alias, d.alias === 'live' ? 'ok' : 'info')),
          h('td.nowrap', null, `${d.previous_version ? `v${d.previous_version}` : '—'} → ${d.version ? `v${d.version}` : 'removed'}`),
          h('td', null, d.actor),
          h('td.text', null, d.reason))), { class: 'history' }) : h('p.muted', null, 'No alias has moved yet.')]);
      R.events(ev, () => [
        h('h2', null, 'Version events'),
        h('p.muted.small', null, !ev.error && ev.events.length >= 500 ? 'The newest 500 disables and enables, by people and by the supervisor (older ones are kept; the API lists 500).' : 'Disable and enable, by people and by the supervisor.'),
        ev.error ? errorBox(ev.error) : ev.events.length ? table(['Time', 'Version', 'Event', 'Who', 'Why'], ev.events.map((e) => h('tr', null,
          h('td', null, timeEl(e.time)), h('td', null, `v${e.version}`), h('td', null, badge(e.event)),
          h('td', null, e.actor === 'supervisor' ? badge('supervisor', 'info') : e.actor), h('td.text', null, e.reason))))
          : h('p.muted', null, 'No version has been disabled or enabled.')]);
      const groups = lm.error ? [] : lm.groups;
      const off = offVersions(svModel, vs.versions);
      const svBrief = svModel && { serving_version: svModel.serving_version, live_alias: svModel.live_alias };
      // The running experiment's arms count only what came since it
      // started: arm names repeat across experiments ("v1", "v2"), and the
      // whole log's groups showed an earlier one's traffic as this one's.
      const current = ex.error ? null : ex.experiments.find((e) => e.active);
      const since = current ? await get(`/v1/models/${enc(name)}/live-metrics?since=${enc(current.started_at)}&max_age=${LIVE_METRICS_MAX_AGE_S}`).catch(() => null) : null;
      if (!ctx.alive()) return;
      const armGroups = since && !since.error ? since.groups : [];
      const armComparisons = since && !since.error ? since.comparisons || [] : [];
      const armReference = since && !since.error ? since.reference || null : null;
      R.experiments({ ex, armGroups, armComparisons, armReference, off: [...off], svBrief },
        () => experimentsCard(name, ex, { groups: armGroups, comparisons: armComparisons, reference: armReference }, off, svBrief));
      R.live(lm, () => [
        h('h2', null, 'Live metrics'),
        h('p.muted.small', null, 'Predictions joined with the outcomes that arrived later as facts, per version and arm',
          lm.computed_at ? [', as of ', timeEl(lm.computed_at), ` (refreshed every ${LIVE_METRICS_MAX_AGE_S} s).`] : '.'),
        lm.error ? errorBox(lm.error) : groups.length ? [liveMetricsTable(groups), liveReliability(groups)] : h('p.muted', null, 'No predictions logged yet.')]);
      const running = ex.error ? null : ex.experiments.find((e) => e.active);
      const disabled = disabledSet(vs.versions);
      const startKey = JSON.stringify([vs.versions.map((v) => [v.version, v.status, v.aliases]), [...disabled], running ? running.id : '']);
      // The form is not redrawn while it has focus or unsent edits (a
      // finished training run reset typed weights and dropped focus); an
      // untouched form follows the versions.
      const busy = state.startBox.dataset.edited === '1' || state.startBox.contains(document.activeElement);
      if (state.startDrawn !== startKey && (running || !busy)) {
        state.startDrawn = startKey;
        if (running) {
          replace(state.startBox, h('h2', null, 'Start an experiment'),
            h('p.muted', null, `Experiment ${running.id} is running; end it to start another (one experiment per model at a time).`));
        } else {
          drawStartExperiment(state.startBox, name, vs.versions, disabled);
        }
      }
    };
    return { refresh };
  }

  // A request that works as copied: this server's address, the JSON content
  // type (without it the answer is 415), and a value of the right kind for
  // each feature of the definition (a field left out would be imputed).
  const EXAMPLE_VALUES = { category: 'a', text: 'a few words', boolean: true, interval: { lower: 1, upper: 2 } };
  function curlPredict(name, definition) {
    const features = {};
    for (const f of (definition && Array.isArray(definition.features) ? definition.features : [])) {
      if (f && f.field) features[f.field] = Object.hasOwn(EXAMPLE_VALUES, f.transform || '') ? EXAMPLE_VALUES[f.transform] : 1;
    }
    const body = JSON.stringify({ entity: 'e1', features }).replace(/'/g, "'\\''");
    return `curl -X POST ${location.origin}/v1/models/${enc(name)}/predict \\
  -H 'Authorization: Bearer <API key with the predict scope>' \\
  -H 'Content-Type: application/json' \\
  -d '${body}'`;
  }

  function recentPredictions(name, pl, entity, definition) {
    if (pl.error) return errorBox(pl.error);
    if (!pl.predictions.length) {
      return entity ? h('p.muted', null, `No logged prediction for entity ${entity}.`)
        : h('div', { id: 'predictions-empty' }, h('p.muted', null, 'No predictions logged yet. Ask for one with an API key with the predict scope (',
          h('a', { href: '#/keys' }, 'API keys'), '):'), h('pre', SCROLLS, curlPredict(name, definition)));
    }
    return table(['Time', 'Entity', 'Version', 'Arm', 'Prediction', 'Fallback', { label: 'Latency ms', num: true }, 'Outcome'],
      pl.predictions.map((p) => h('tr', { 'data-prediction': p.id },
        h('td', null, timeEl(p.time)),
        h('td', null, p.entity || '—'),
        h('td', null, p.version ? `v${p.version}` : '—'),
        h('td', null, p.arm, p.shadow ? [' ', badge('shadow')] : null),
        h('td', null, valueText(p.prediction)),
        h('td', null, p.fallback ? h('span.worse', null, p.reason) : 'no'),
        h('td.num', null, fmtMs(p.latency_ms, 2)),
        h('td', null, p.outcome ? `${valueText(p.outcome.value)} (by ${p.outcome.joined_by === 'prediction_id' ? 'prediction id' : 'entity'})` : '—'))));
  }

  // What a live decision rate counts over, and its interval: a 0 on one
  // row does not read as a 0 on a thousand.
  const DECISION_BASIS = {
    decision_precision: ['answered_positive', 'positive answers', 'precision_interval'],
    decision_recall: ['positives', 'positive outcomes', 'recall_interval'],
    decision_false_positive_rate: ['negatives', 'negative outcomes', 'false_positive_rate_interval'],
  };
  function decisionCellTitle(g, k) {
    const basis = DECISION_BASIS[k];
    const d = g.decision;
    if (!basis || !d) return null;
    const [count, words, interval] = basis;
    const n = d.entities ? d.entities[count] : undefined;
    const ents = Number.isFinite(n) ? ` from ${fmtNum(n)} ${n === 1 ? 'entity' : 'entities'}` : '';
    const iv = Array.isArray(d[interval]) ? `, 95% interval [${sig4(d[interval][0])}, ${sig4(d[interval][1])}]` : '';
    const rows = d[count];
    return `over ${fmtNum(rows)} ${rows === 1 ? words.replace(/s( |$)/, '$1') : words}${ents}, each entity counted once${iv}`;
  }

  // Binary groups' reliability on their joined outcomes (shadows and
  // fallbacks apart): how the probabilities served compare with the rates
  // seen since, beside what chance alone would show.
  function liveReliability(groups) {
    const shown = groups.filter((g) => Array.isArray(g.reliability) && g.outcomes > 0 && !g.shadow && g.version).slice(0, 4);
    if (!shown.length) return null;
    return h('div.live-reliability', { id: 'live-reliability' },
      h('h3', null, 'Calibration of the answers'),
      h('div.calibration-body', null, shown.map((g) => h('figure', { 'data-version': g.version, 'data-arm': g.arm },
        reliabilityChart(g.reliability, null, `of v${g.version} (${g.arm}) on its joined outcomes`),
        h('figcaption.small.muted', null, `v${g.version} (${g.arm}): calibration error ${fmtNum(g.metrics && g.metrics.calibration_error, 3)} over ${fmtNum(g.outcomes)} outcomes` +
          (Number.isFinite(g.calibration_error_by_chance) ? `; about ${fmtNum(g.calibration_error_by_chance, 3)} by chance alone` : ''))))));
  }

  // A live calibration error beside what chance alone would show over as
  // many outcomes: 0.15 on 30 is noise.
  function chanceCellTitle(g, k) {
    if (k !== 'calibration_error' || !Number.isFinite(g.calibration_error_by_chance)) return null;
    return `a perfectly calibrated model's would be about ${fmtNum(g.calibration_error_by_chance, 3)} by chance over these ${fmtNum(g.outcomes)} outcomes`;
  }

  function liveMetricsTable(groups) {
    const names = [];
    for (const g of groups) for (const k of Object.keys(numericMetrics(g.metrics))) if (!names.includes(k)) names.push(k);
    return table(['Version', 'Arm', { label: 'Predictions', num: true }, { label: 'Outcomes', num: true }, { label: 'Fallbacks', num: true },
      { label: 'Mean latency ms', num: true }, 'Gate metric, 95% interval', names.map((k) => ({ label: k, num: true }))].flat(),
    groups.map((g) => h('tr', null,
      h('td', null, g.version ? `v${g.version}` : 'fallback'),
      h('td', null, g.arm || '—', g.shadow ? [' ', badge('shadow')] : null),
      h('td.num', null, fmtNum(g.predictions)),
      // Outcomes the version cannot score (a class it never learned) are
      // shown beside the scored ones: a metric over fewer needs its why.
      h('td.num', null, fmtNum(g.outcomes), g.unscored_outcomes
        ? h('span.worse.small', { title: 'joined outcomes this version cannot score: a class it does not know, or a value of another type' }, ` +${fmtNum(g.unscored_outcomes)} unscored`) : null),
      h('td.num', null, fmtNum(g.fallbacks)),
      h('td.num', null, fmtMs(g.mean_latency_ms, 2)),
      h('td.small.primary-metric', null, g.primary ? [`${g.primary.metric} ${fmtNum(g.primary.value, 4)}`,
        g.primary.lower === null ? h('span.muted', { title: 'outcomes from fewer than 30 entities: no interval' }, ' (too few entities)')
          : h('span.muted', null, ` [${fmtNum(g.primary.lower, 4)}, ${fmtNum(g.primary.upper, 4)}]`)] : '—'),
      // A decision's rate to four significant digits: 0.00004 is not 0.
      names.map((k) => h('td.num', { title: decisionCellTitle(g, k) || chanceCellTitle(g, k) }, isDecisionMetric(k) ? sig4(numericMetrics(g.metrics)[k]) : fmtNum(numericMetrics(g.metrics)[k], 4))))));
  }

  // An arm against the arm answering with live's version, or a shadow
  // against that arm's answers to the same requests: the difference in the
  // gate's metric, its 95% interval, and what the interval allows saying.
  const VERDICT_CLASS = { better: 'ok', worse: 'bad' };
  function signed(v) {
    return v === null || v === undefined ? '—' : `${v > 0 ? '+' : ''}${fmtNum(v, 4)}`;
  }
  function comparisonCell(cmp) {
    if (!cmp) return '—';
    const cls = VERDICT_CLASS[cmp.verdict];
    const verdict = h(`span.badge${cls ? '.' + cls : ''}`, { 'data-verdict': cmp.verdict }, cmp.verdict.replace(/_/g, ' '));
    const against = cmp.paired ? `arm ${cmp.against.arm} (v${cmp.against.version}) on the same requests` : `arm ${cmp.against.arm} (v${cmp.against.version})`;
    const title = cmp.verdict === 'not_comparable' ? `not comparable with ${against}: another task or other classes`
      : `${cmp.metric} of this arm minus that of ${against} (${cmp.higher_is_better ? 'higher' : 'lower'} is better), `
      + `with its 95% interval from resampling entities; outcomes from ${fmtNum(cmp.entities)} and ${fmtNum(cmp.against_entities)} entities`;
    return h('span.comparison', { title },
      cmp.difference === null ? null : `${cmp.metric} ${signed(cmp.difference)}`,
      cmp.lower === null ? null : h('span.muted', null, ` [${signed(cmp.lower)}, ${signed(cmp.upper)}]`),
      cmp.difference === null ? null : ' ', verdict);
  }

  function againstLive(kept, a) {
    if (!kept) return '—';
    const cmp = kept.comparisons.find((c) => c.arm === a.name && c.version === a.version && c.shadow === Boolean(a.shadow));
    if (cmp) return comparisonCell(cmp);
    const ref = kept.reference;
    if (ref === undefined) return '—';
    if (!a.shadow && ref && ref.arm === a.name && ref.version === a.version) {
      return h('span.muted', { title: 'the arm answering with the version live was when the experiment started: the others are compared with it' }, 'the reference');
    }
    // No arm answers with that version: nothing to compare with.
    return ref ? '—' : h('span.muted', { title: 'no arm of this experiment answers with the version live was when it started' }, 'no reference');
  }

  function experimentsCard(name, ex, running, off, sv) {
    if (ex.error) return [h('h2', null, 'Experiments'), errorBox(ex.error)];
    const exps = ex.experiments.slice().sort((a, b) => b.id - a.id);
    return [
      h('h2', null, 'Experiments'),
      h('p.muted.small', null, 'Traffic split between versions by a stable hash of the entity; a shadow arm is scored and logged, never returned.'),
      exps.length ? exps.map((e) => {
        const arms = Array.isArray(e.arms) ? e.arms : [];
        const end = e.active ? h('button.small.danger', { type: 'button', 'data-action': 'end-experiment',
          onclick: () => act({ title: `End experiment ${e.id}`, text: 'All traffic goes back to the live version. What its arms showed until now is kept with it.', confirm: 'End experiment', danger: true },
            (reason) => api('POST', `/v1/models/${enc(name)}/experiments/${e.id}/end`, { reason },
              Array.isArray(e.history) ? { 'If-Match': `"e${e.history.length}"` } : undefined),
            (r) => (r && r.changed === false ? `Experiment ${e.id} of ${name} had ended already: nothing changed` : `Ended experiment ${e.id} of ${name}`)) }, 'End experiment') : null;
        // The running experiment's numbers come from its traffic since it
        // started; an ended one's are those kept at its end (its traffic is
        // not kept apart afterwards: arm names repeat across experiments).
        const kept = e.active ? running
          : e.results ? { groups: e.results.groups || [], comparisons: e.results.comparisons || [], reference: e.results.reference || null } : null;
        return h('div.card', { 'data-experiment': e.id },
          h('div.card-head', null, h('h3', null, `Experiment ${e.id} `, badge(e.active ? 'active' : 'ended')), end),
          h('p.small', null, `Started ${fmtTime(e.started_at)} by ${e.started_by}: ${e.reason}`,
            e.ended_at ? h('span', null, h('br'), `Ended ${fmtTime(e.ended_at)} by ${e.ended_by}: ${e.end_reason}`) : null),
          e.active ? null : h('p.muted.small.experiment-results', null, e.results
            ? ['As its arms stood when it ended (', timeEl(e.results.computed_at), '): outcomes that came later are not counted.']
            : 'Nothing was kept of its arms\' traffic: it ended before results were kept, or with its model\'s archiving.'),
          canaryNote(e, e.active ? running : null),
          shareBar(arms),
          table(['Arm', 'Version', { label: 'Share', num: true }, { label: 'Predictions', num: true }, { label: 'Outcomes', num: true }, { label: 'Fallbacks', num: true }, 'Live metrics', 'Against live'],
            arms.map((a) => {
              const g = !kept ? null : kept.groups.find((x) => x.arm === a.name && x.version === a.version && x.shadow === Boolean(a.shadow))
                || kept.groups.find((x) => x.arm === a.name);
              const mets = g ? numericMetrics(g.metrics) : {};
              // The arm's requests are all its groups': those another version
              // answered (its own disabled, failing or late) are its
              // fallbacks, and were left out ("0 fallbacks" under an arm
              // whose every request fell back).
              const all = !kept ? [] : kept.groups.filter((x) => x.arm === a.name && Boolean(x.shadow) === Boolean(a.shadow));
              const total = (k) => all.reduce((s, x) => s + (Number(x[k]) || 0), 0);
              const byOthers = all.filter((x) => x.version !== a.version).reduce((s, x) => s + (Number(x.predictions) || 0), 0);
              // An ended experiment's arms are history: no mark of what is disabled now.
              return h('tr', { 'data-arm': a.name },
                h('td', null, a.name, a.shadow ? [' ', badge('shadow')] : null, e.active ? disabledArmBadge(a, off, sv) : null),
                h('td', null, `v${a.version}`),
                h('td.num', null, a.shadow ? 'shadow' : fmtPct(a.weight)),
                h('td.num', byOthers ? { title: `${fmtNum(byOthers)} of them answered by another version, as fallbacks` } : null,
                  all.length ? fmtNum(total('predictions')) : kept ? '0' : '—'),
                h('td.num', null, all.length ? fmtNum(total('outcomes')) : kept ? '0' : '—'),
                h('td.num', null, all.length ? fmtNum(total('fallbacks')) : kept ? '0' : '—'),
                h('td.small', null, Object.keys(mets).length ? Object.entries(mets).map(([k, v]) => `${k} ${fmtNum(v, 4)}`).join(' · ') : '—'),
                h('td.small', null, againstLive(kept, a)));
            })));
      }) : h('p.muted', null, 'No experiments yet. Start one below to split traffic between versions.'),
    ];
  }

  // The form starts with live (90 %) beside the newest other version the
  // gate did not reject (10 %); disabled versions are left out of both.
  function drawStartExperiment(box, name, versions, disabled) {
    delete box.dataset.edited;
    if (!box.dataset.watched) {
      box.dataset.watched = '1';
      const edited = () => { box.dataset.edited = '1'; };
      box.addEventListener('input', edited);
      box.addEventListener('change', edited);
    }
    const sorted = versions.slice().sort((a, b) => b.version - a.version);
    if (!sorted.length) {
      replace(box, h('h2', null, 'Start an experiment'), h('p.muted', null, 'The model needs versions first.'));
      return;
    }
    const usable = sorted.filter((v) => !disabled.has(v.version));
    const live = usable.find((v) => (v.aliases || []).includes('live'));
    // With live disabled, the newest version the gate passed starts at 90 %
    // (a rejected one did: most of the traffic on a version judged worse).
    const main = live || usable.find((v) => v.status !== 'rejected') || usable[0];
    const other = usable.find((v) => v !== main && v.status !== 'rejected') || usable.find((v) => v !== main);
    const armsBox = h('div', { id: 'experiment-arms' });
    const label = (v) => `v${v.version}${(v.aliases || []).includes('live') ? ' (live)' : ''}${disabled.has(v.version) ? ' (disabled)' : v.status === 'rejected' ? ' (rejected)' : ''}`;
    // Each row's controls say which arm they are, read out of context.
    let armsAdded = 0;
    const addArm = (version, weight, shadow) => {
      const n = ++armsAdded;
      // A disabled version is shown, not offered: the server refuses it.
      const vsel = h('select', { 'aria-label': `Arm ${n} version`, class: 'arm-version' }, sorted.map((v) => h('option', { value: v.version, selected: v.version === version, disabled: disabled.has(v.version) }, label(v))));
      // Two arms of one version need names (their default is the version's).
      const nm = h('input', { type: 'text', class: 'arm-name', placeholder: `v${version}`, maxlength: '64', 'aria-label': `Arm ${n} name (optional)` });
      const w = h('input', { type: 'number', min: '0', step: 'any', value: String(weight), 'aria-label': `Arm ${n} weight`, class: 'arm-weight' });
      const sh = h('input', { type: 'checkbox', class: 'arm-shadow', checked: shadow, 'aria-label': `Arm ${n} shadow` });
      const rm = h('button.small', { type: 'button', 'aria-label': `Remove arm ${n}` }, 'Remove');
      vsel.addEventListener('change', () => { nm.placeholder = `v${vsel.value}`; });
      const row = h('div.arm-row', null, vsel, h('label.inline', null, 'name', nm), h('label.inline', null, 'weight', w), h('label.inline', null, sh, 'shadow'), rm);
      rm.addEventListener('click', () => row.remove());
      armsBox.append(row);
    };
    const first = main || sorted[0];
    addArm(first.version, 0.9, false);
    if (other && other !== first) addArm(other.version, 0.1, false);
    const add = h('button', { type: 'button' }, 'Add arm');
    add.addEventListener('click', () => addArm((other || first).version, 0.1, false));
    const errs = h('div', { id: 'experiment-errors' });
    const start = h('button.primary', { type: 'button', 'data-action': 'start-experiment' }, 'Start experiment');
    start.addEventListener('click', async () => {
      const rows = [...armsBox.querySelectorAll('.arm-row')];
      let blank = null;  // the first row whose weight box is empty (Number('') would send 0)
      const arms = rows.map((row) => {
        const shadow = row.querySelector('.arm-shadow').checked;
        const w = row.querySelector('.arm-weight');
        const arm = { version: Number(row.querySelector('.arm-version').value) };
        const armName = row.querySelector('.arm-name').value.trim();
        if (armName) arm.name = armName;
        const old = row.querySelector('.arm-error');
        if (old) old.remove();
        w.removeAttribute('aria-invalid');
        // A box the browser cannot read as a number ("1e", "abc") is empty too.
        if (!shadow && (w.value.trim() === '' || !Number.isFinite(Number(w.value)))) {
          w.setAttribute('aria-invalid', 'true');
          row.append(h('div.arm-error', { role: 'alert' }, 'Give this arm a weight (its share of the traffic), or mark it shadow.'));
          if (!blank) blank = w;
        }
        if (shadow) arm.shadow = true; else arm.weight = Number(w.value);
        return arm;
      });
      replace(errs);
      if (!arms.length) {
        replace(errs, h('div.alert.error', { role: 'alert' }, 'Add at least one arm: an experiment needs a version that takes traffic.'));
        return;
      }
      if (blank) { blank.focus(); return; }
      const reason = await ask({ title: `Start an experiment on ${name}`, text: `Arms: ${arms.map((a) => `${a.name ? `${a.name}: ` : ''}v${a.version} ${a.shadow ? 'shadow' : `weight ${a.weight}`}`).join(', ')}.`,
        confirm: 'Start', placeholder: 'e.g. try v4 on 10 % of traffic' });
      if (reason === null) return;
      try {
        const e = await api('POST', `/v1/models/${enc(name)}/experiments`, { arms, reason });
        flash(`Started experiment ${e.id} on ${name}`);
      } catch (err) {
        replace(errs, errorBox(err, 'The server refused the experiment'));
      }
      await refreshNow();
    });
    replace(box, h('h2', null, 'Start an experiment'),
      h('p.muted.small', null, 'Weights are normalised to shares. Only one experiment per model runs at a time.'),
      armsBox, h('div.actions', null, add, start), errs);
  }

  // ---- API keys

  function viewKeys(root) {
    const createBox = h('div.card');
    const listBox = h('div.card', null, loading());
    replace(root, pageHead('API keys', 'Keys for apps and scripts. Only a hash of each key is stored.'), createBox, listBox);
    const nameIn = h('input', { id: 'key-name', placeholder: 'e.g. feed-app', maxlength: 64 });
    const scopes = ['read', 'ingest', 'predict', 'admin'].map((s) => h('input', { type: 'checkbox', value: s, checked: s === 'ingest', class: 'key-scope', id: `key-scope-${s}` }));
    // Focused when it shows a new key: "Created" alone was announced, not
    // that the secret is on screen to copy.
    const created = h('div', { id: 'key-created', tabindex: -1, role: 'status' });
    const create = h('button.primary', { type: 'submit', 'data-action': 'create-key' }, 'Create key');
    let shownKey = null;  // the id of the key whose secret is on screen
    let shownAt = 0;  // when it was shown: a list asked for before cannot hold it
    // A revoked key's secret is of no use and should not stay on screen.
    const forgetShown = (id) => { if (shownKey !== null && shownKey === id) { shownKey = null; replace(created); } };
    const modelsIn = h('input', { id: 'key-models', placeholder: 'any; e.g. likes' });
    const streamsIn = h('input', { id: 'key-streams', placeholder: 'any; e.g. posts,likes' });
    const names = (input) => input.value.split(',').map((n) => n.trim()).filter(Boolean);
    // A key for a contractor or a one-off script can end by itself.
    const expiresIn = h('select', { id: 'key-expires' },
      [['', 'Never'], ['1', 'In 1 day'], ['7', 'In 7 days'], ['30', 'In 30 days'], ['90', 'In 90 days'], ['365', 'In 1 year']]
        .map(([v, label]) => h('option', { value: v }, label)));
    const form = h('form', null,
      h('h2', null, 'Create a key'),
      h('label', { for: 'key-name' }, 'Name'), nameIn,
      h('fieldset.scopes', null, h('legend', null, 'Scopes'),
        h('div.row', null, scopes.map((c) => h('label.inline', { for: c.id }, c, c.value)))),
      h('p.muted.small', null, 'ingest: send facts · predict: ask for predictions · admin: everything, including this page\'s actions. Any key may read.'),
      h('label', { for: 'key-expires' }, 'Expires'), expiresIn,
      h('label', { for: 'key-models' }, 'Only these models (predict)'), modelsIn,
      h('label', { for: 'key-streams' }, 'Only these streams (ingest)'), streamsIn,
      h('p.muted.small', null, 'Comma-separated; empty: any. An app\'s key need reach only its own models and streams.'),
      h('div.actions', null, create), created);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = { name: nameIn.value.trim(), scopes: scopes.filter((c) => c.checked).map((c) => c.value) };
      // Text with no name in it (" , ") would make a key without the limit.
      const unnamed = [[modelsIn, 'models'], [streamsIn, 'streams']].find(([input]) => input.value.trim() && !names(input).length);
      if (unnamed) {
        replace(created, h('div.alert.error', { role: 'alert' }, `"Only these ${unnamed[1]}" names none; leave it empty for any.`));
        unnamed[0].focus();
        return;
      }
      if (names(modelsIn).length) body.models = names(modelsIn);
      if (names(streamsIn).length) body.streams = names(streamsIn);
      if (expiresIn.value) {
        const at = new Date(Date.now() + Number(expiresIn.value) * 86400e3);
        at.setUTCMilliseconds(0);
        body.expires_at = at.toISOString().replace('.000Z', 'Z');
      }
      create.disabled = true;
      try {
        const k = await api('POST', '/v1/keys', body);
        shownKey = k.id;
        shownAt = Date.now();
        const copy = h('button.small', { type: 'button' }, 'Copy');
        copy.addEventListener('click', async () => {
          try { await navigator.clipboard.writeText(k.key); copy.textContent = 'Copied'; } catch (e) { copy.textContent = 'Select and copy it'; }
        });
        replace(created, h('div.alert.success', null,
          h('div.title', null, `Key "${k.name}" created. Copy it now: it is shown only once.`),
          k.expires_at ? h('p.small', null, `It stops working at ${fmtTime(k.expires_at)}.`) : null,
          h('div.secret', null, h('code', { id: 'new-key' }, k.key), copy),
          h('p.small', null, 'A client sends it as ', h('code', null, 'Authorization: Bearer <key>'), '.')));
        nameIn.value = '';
        expiresIn.value = '';
        modelsIn.value = '';
        streamsIn.value = '';
        flash(`Created API key "${k.name}"`);
        created.focus();
        await refreshNow();
      } catch (err) {
        replace(created, errorBox(err, 'Could not create the key'));
      } finally {
        create.disabled = false;
        refocus(create);
      }
    });
    replace(createBox, form);
    // Which keys the list shows, outside the region the poll redraws; the
    // list grows by a page at a time (the server pages it, newest first).
    const view = { state: 'active', limit: 100, before: null };
    const stateSel = h('select', { id: 'key-state', 'aria-label': 'Show keys' },
      [['active', 'Active keys'], ['expired', 'Expired keys'], ['revoked', 'Revoked keys'], ['', 'All keys']]
        .map(([v, label]) => h('option', { value: v }, label)));
    stateSel.addEventListener('change', () => { Object.assign(view, { state: stateSel.value, limit: 100, before: null }); refreshNow(); });
    const listHead = h('div.row', null, h('h2', null, 'Keys'), h('label.inline', null, 'Show', stateSel));
    const listBody = h('div');
    replace(listBox, listHead, listBody);
    const drawBody = liveRegion(listBody);
    const soon = 7 * 86400e3;  // an expiry this close is pointed out
    const stateCell = (k) => {
      if (k.state === 'revoked') return [badge('revoked', 'bad'), h('span.small.muted', null, ` ${fmtTime(k.revoked_at)} by ${k.revoked_by}`)];
      if (k.state === 'expired') return [badge('expired', 'bad'), h('span.small.muted', null, ` ${fmtTime(k.expires_at)}`)];
      if (k.expires_at && Date.parse(k.expires_at) - Date.now() < soon) return [badge('active'), ' ', badge('expires soon', 'warn')];
      return badge('active');
    };
    const refresh = async () => {
      const askedAt = Date.now();
      const d = await get(`/v1/keys?limit=${view.limit}${view.state ? `&state=${view.state}` : ''}${view.before ? `&before=${view.before}` : ''}`);
      for (const k of d.keys) if (k.state !== 'active') forgetShown(k.id);
      // Revoked elsewhere: it left the active keys (the newest, it is on the first page).
      if (view.state === 'active' && !view.before && askedAt > shownAt && !d.keys.some((k) => k.id === shownKey)) forgetShown(shownKey);
      // A longer page up to the server's 1,000, then pages of older keys.
      const button = (action, label, change) => h('button.small', { type: 'button', 'data-action': action, onclick: () => { Object.assign(view, change()); refreshNow(); } }, label);
      const paging = [
        d.next_before !== null && view.limit < 1000 ? button('more-keys', 'Show more', () => ({ limit: Math.min(1000, view.limit + 100) })) : null,
        d.next_before !== null && view.limit >= 1000 ? button('older-keys', 'Older keys', () => ({ before: d.next_before, limit: 100 })) : null,
        view.before ? button('newest-keys', 'Newest keys', () => ({ before: null, limit: 100 })) : null,
      ].filter(Boolean).flatMap((b) => [' ', b]);
      drawBody({ d, view: { ...view } }, () => [
        d.keys.length ? table(['Name', 'Prefix', 'Scopes', 'Created', 'By', 'Expires', 'Last used', 'State', ACTIONS], d.keys.map((k) => h('tr', { 'data-key': k.id },
          h('td', null, k.name || h('span.muted', null, '(no name)')),
          h('td', null, h('code', null, `${k.prefix}…`)),
          h('td', null, (k.scopes || []).map((s) => h('span.chip', null, badge(s, 'info'))),
            k.models ? h('div.small.muted', null, `only models: ${k.models.join(', ')}`) : null,
            k.streams ? h('div.small.muted', null, `only streams: ${k.streams.join(', ')}`) : null),
          h('td', null, timeEl(k.created_at)),
          h('td', null, k.created_by),
          h('td', null, k.expires_at ? timeEl(k.expires_at) : h('span.muted', null, 'never')),
          h('td', null, k.last_used_at ? timeEl(k.last_used_at) : h('span.muted', null, 'never')),
          h('td', null, stateCell(k)),
          h('td.cell-actions', null, k.state === 'revoked' ? null : h('button.small.danger', { type: 'button', 'data-action': 'revoke', 'aria-label': `Revoke key "${k.name}"`,
            onclick: () => act({ title: `Revoke key "${k.name}"?`, text: 'Requests with it are refused from now on. This cannot be undone.', confirm: 'Revoke', reason: false, danger: true },
              () => api('DELETE', `/v1/keys/${k.id}`),
              (r) => (r && r.changed === false ? `API key "${k.name}" was revoked already (by someone else meanwhile?): nothing changed` : `Revoked API key "${k.name}"`)) }, 'Revoke'))))) : h('p.muted', null, view.state ? `No ${view.state} API keys.` : 'No API keys yet.'),
        h('p.muted.small', { id: 'key-count' }, `${d.keys.length} of ${d.count} shown, newest first${view.before ? `, older than key ${view.before}` : ''}.`, ...paging)]);
    };
    return { refresh };
  }

  // ---------------------------------------------------------------------------
  // Router: #/overview, #/streams[/s], #/models[/name], #/jobs[/id],
  // #/deployments[/name], #/keys.

  const ROUTES = [
    [/^#?\/?$/, 'overview', viewOverview, []],
    [/^#\/overview$/, 'overview', viewOverview, []],
    [/^#\/streams$/, 'streams', viewStreams, []],
    [/^#\/streams\/([^/]+)$/, 'streams', viewStreams, ['stream']],
    [/^#\/models$/, 'models', viewModels, []],
    [/^#\/models\/([^/]+)$/, 'models', viewModel, ['name']],
    [/^#\/jobs$/, 'jobs', viewJobs, []],
    [/^#\/jobs\/(\d+)$/, 'jobs', viewJob, ['id']],
    [/^#\/deployments$/, 'deployments', viewDeployments, []],
    [/^#\/deployments\/([^/]+)$/, 'deployments', viewDeployments, ['name']],
    [/^#\/keys$/, 'keys', viewKeys, []],
  ];

  // The tab's title names the page, so tabs and history tell them apart:
  // "likes · Models · Kennel".
  const SECTION_TITLES = { overview: 'Overview', streams: 'Streams', models: 'Models', jobs: 'Jobs', deployments: 'Deployments', keys: 'API keys' };
  function pageTitle(match) {
    if (!match) return 'Not found · Kennel';
    const p = match.params;
    const item = p.id ? `Job ${p.id}` : p.name || p.stream;
    return [item, SECTION_TITLES[match.nav], 'Kennel'].filter(Boolean).join(' · ');
  }

  let current = null; // {id, refresh, errorBox, busy}
  let viewSeq = 0;
  let pollTimer = null;

  function route() {
    if (!session.user) return;
    const hash = location.hash || '#/overview';
    let match = null;
    for (const [re, nav, fn, names] of ROUTES) {
      const m = hash.match(re);
      if (m) {
        // A malformed escape (a hand-edited "%E0%A4%A") names no page: it
        // threw here, and the previous view stayed under a "Page error".
        try {
          const params = {};
          names.forEach((n, i) => { params[n] = decodeURIComponent(m[i + 1]); });
          match = { nav, fn, params };
        } catch (err) {
          if (!(err instanceof URIError)) throw err;
        }
        break;
      }
    }
    const main = $('#main');
    document.title = pageTitle(match);
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', Boolean(match) && a.dataset.view === match.nav);
    $('#topbar').classList.remove('open');
    $('#menu-button').setAttribute('aria-expanded', 'false');
    const id = ++viewSeq;
    if (!match) {
      current = null;
      replace(main, pageHead('Not found'), h('div.alert.warn', null, `There is no page at ${hash}. `, h('a', { href: '#/overview' }, 'Go to the overview.')));
      return;
    }
    const errSlot = h('div', { class: 'view-error' });
    const viewRoot = h('div');
    replace(main, errSlot, viewRoot);
    const ctx = { alive: () => id === viewSeq && Boolean(session.user) };
    let view;
    try {
      view = match.fn(viewRoot, match.params, ctx) || {};
    } catch (err) {
      replace(errSlot, errorBox(err, 'This page failed to draw'));
      return;
    }
    current = { id, refresh: view.refresh, errSlot, ctx, busy: null, lastErr: null, root: viewRoot, lastOk: null };
    window.scrollTo(0, 0);
    return refreshNow();
  }

  // Refreshes the current view's live parts; errors are shown above the view
  // (the last good data stays), and cleared when a refresh succeeds.
  async function refreshNow() {
    const cur = current;
    if (!cur || !cur.refresh) return;
    if (cur.busy) {
      cur.again = true;
      return cur.busy;
    }
    cur.busy = (async () => {
      try {
        await cur.refresh();
        cur.lastOk = new Date();
        cur.root.classList.remove('stale');
        if (cur.lastErr !== null) { cur.lastErr = null; replace(cur.errSlot); }
      } catch (err) {
        if (!cur.ctx.alive()) return;
        // What is shown is from the last answer: dimmed, and said when
        // (with the server down, "running" and "last tick just now" stayed
        // as if current).
        cur.root.classList.add('stale');
        const key = `${err.status}|${err.message}`;
        if (cur.lastErr !== key) {
          cur.lastErr = key;
          replace(cur.errSlot, errorBox(err, `Could not load this page${cur.lastOk ? `: what is below is as it was at ${fmtTime(cur.lastOk.toISOString())}` : ''}`));
        }
      } finally {
        cur.busy = null;
      }
      if (cur.again && cur.ctx.alive()) { cur.again = false; await refreshNow(); }
    })();
    return cur.busy;
  }

  function startPolling() {
    stopPolling();
    pollTimer = setInterval(() => {
      if (document.hidden || !session.user) return;
      // Not while a question is open or a button is being pressed: a redraw
      // would replace the button between mouse down and up.
      if ($('#dialog').open || pointerDown) return;
      refreshNow();
    }, POLL_MS);
  }
  let pointerDown = false;
  document.addEventListener('pointerdown', () => { pointerDown = true; }, true);
  document.addEventListener('pointerup', () => { setTimeout(() => { pointerDown = false; }, 50); }, true);
  document.addEventListener('pointercancel', () => { pointerDown = false; }, true);

  function stopPolling() { if (pollTimer) clearInterval(pollTimer); pollTimer = null; }

  // ---------------------------------------------------------------------------
  // Signing in and out

  function showSignin(message, kind = 'info') {
    session.user = null;
    session.csrf = null;
    current = null;
    viewSeq += 1;
    stopPolling();
    $('#boot').hidden = true;
    $('#shell').hidden = true;
    replace($('#main'));
    // Messages about the session that ended are no use on the sign-in form,
    // and would stay there: nothing removes an error flash but its button.
    replace($('#flash'));
    document.title = 'Sign in · Kennel';
    $('#signin').hidden = false;
    replace($('#signin-message'), message ? h(`div.alert.${kind}`, null, message) : null);
    const pw = $('#signin-password');
    pw.value = '';
    ($('#signin-user').value ? pw : $('#signin-user')).focus();
  }

  function signedOut(message) {
    if ($('#dialog').open) $('#dialog').close();
    showSignin(message, 'warn');
  }

  function showShell(s) {
    session.user = s.user;
    session.csrf = s.csrf_token;
    $('#boot').hidden = true;
    $('#signin').hidden = true;
    $('#shell').hidden = false;
    $('#who-user').textContent = s.user;
    startPolling();
    route();
  }

  async function signIn(ev) {
    ev.preventDefault();
    const btn = $('#signin-submit');
    const username = $('#signin-user').value.trim();
    const password = $('#signin-password').value;
    if (!username || !password) {
      replace($('#signin-message'), h('div.alert.error', null, !username ? 'Enter your user name.' : 'Enter your password.'));
      return;
    }
    btn.disabled = true;
    btn.textContent = 'Signing in…';
    replace($('#signin-message'));
    $('#signin-password').removeAttribute('aria-invalid');
    try {
      const s = await api('POST', '/v1/auth/login', { username, password });
      $('#signin-password').value = '';
      showShell(s);
    } catch (err) {
      const msg = err.status === 401 ? 'Wrong user name or password.'
        : err.status === 429 ? err.message
          : `Could not sign in: ${err.message}`;
      replace($('#signin-message'), h('div.alert.error', { role: 'alert' }, msg));
      $('#signin-password').setAttribute('aria-invalid', 'true');
      $('#signin-password').select();
    } finally {
      btn.disabled = false;
      btn.textContent = 'Sign in';
      refocus(btn);
    }
  }

  async function signOut() {
    // Requests still in flight answer 401 once the session is gone: that is
    // this sign-out, not a session that ended by itself (the page showed
    // "Your session has ended" when one of them came back first).
    const user = session.user;
    session.user = null;
    stopPolling();
    try {
      await api('POST', '/v1/auth/logout', {});
      showSignin('You have signed out.', 'info');
    } catch (err) {
      session.user = user;
      startPolling();
      flashError(err, 'Sign out');
    }
  }

  async function boot() {
    $('#signin-form').addEventListener('submit', signIn);
    $('#signout').addEventListener('click', signOut);
    // The skip link's own href would be a route to the hash router.
    $('#skip-link').addEventListener('click', (e) => {
      e.preventDefault();
      $('#main').focus();
    });
    $('#menu-button').addEventListener('click', () => {
      const open = $('#topbar').classList.toggle('open');
      $('#menu-button').setAttribute('aria-expanded', String(open));
    });
    // Escape closes the phone menu, as it would a dialog; focus goes back to its button.
    document.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape' || !$('#topbar').classList.contains('open') || $('#dialog').open) return;
      $('#topbar').classList.remove('open');
      $('#menu-button').setAttribute('aria-expanded', 'false');
      $('#menu-button').focus();
    });
    // Close the menu on a choice at once: choosing the page already shown fires no hashchange.
    $('#nav').addEventListener('click', (e) => {
      if (!e.target.closest('a')) return;
      $('#topbar').classList.remove('open');
      $('#menu-button').setAttribute('aria-expanded', 'false');
    });
    // A page the person chose starts at the page: focus stayed on <body>
    // (or on the link, under the new page), and nothing said a page changed.
    // A control on the page that set the hash (the deployments picker, moved
    // by the arrow keys) keeps focus in the new view, once drawn: it fell to
    // <body> and the second key press did nothing.
    window.addEventListener('hashchange', async () => {
      const from = document.activeElement;
      const followed = !from || from === document.body || from.tagName === 'A';
      const id = followed ? '' : from.id;
      const drawn = route();
      if (followed) { $('#main').focus({ preventScroll: true }); return; }
      await drawn;
      const again = id && document.getElementById(id);
      if (again && (!document.activeElement || document.activeElement === document.body)) again.focus();
    });
    try {
      const s = await api('GET', '/v1/auth/session');
      showShell(s);
    } catch (err) {
      if (err.status === 401) showSignin();
      else showSignin(`Kennel did not answer as expected: ${err.message}`, 'error');
    }
  }

  // Anything unexpected is a message on the page, never a blank page.
  window.addEventListener('error', (ev) => flash(`Page error: ${ev.message}`, 'error'));
  window.addEventListener('unhandledrejection', (ev) => flash(`Page error: ${ev.reason && ev.reason.message ? ev.reason.message : ev.reason}`, 'error'));

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
