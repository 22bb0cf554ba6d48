// The PBX's Google Integration page. Plain JS, no build step. Everything goes through
// host-sim's JSON API, which calls the plugin through its C ABI.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  account: null,
  pending: null,      // { account, done } while a consent popup is open
  seen: new Set(),    // results already handled (postMessage and BroadcastChannel both deliver)
  polling: false,
  lastStatus: null,
  awaitingSync: null, // { account, last, status, since } after "Sync now"
  book: {
    keypad: false,
    offset: 0,
    limit: 20,
    total: 0,
    seq: 0,           // the newest search sent; older answers are dropped
    timer: null,      // the debounce of typing
    synced: null,     // account, last sync and contacts the rows were searched on
  },
};

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(path, opts);
  } catch (e) {
    throw new Error('host-sim does not answer: is it still running?');
  }
  let data = {};
  try { data = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) throw new Error(data.error || `${path} answered HTTP ${response.status}`);
  return data;
}

function showMessage(kind, text, title) {
  const m = $('message');
  m.className = 'message ' + (kind || '');
  m.replaceChildren();
  if (title) {
    const b = document.createElement('b');
    b.textContent = title;
    m.append(b, document.createElement('br'));
  }
  m.append(text || '');
  m.hidden = !text && !title;
}

/** The plugin's messages are sentences without the first capital or the final stop. */
function sentence(text) {
  const t = (text || '').trim();
  if (!t) return t;
  const s = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : s + '.';
}

const LOOK = {
  disconnected: { icon: '✗', text: 'Not connected',
    sub: 'Press “Get auth code” to connect a Google account.' },
  connected: { icon: '✓', text: 'Connected',
    sub: 'Incoming calls show the names of this account’s Google contacts.' },
  issue: { icon: '!', text: 'Connected, with an issue',
    sub: 'Callers are still named from the last good sync. See what to do below.' },
};

function ago(date) {
  const s = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** Local HH:MM of an RFC 3339 time. */
function hhmm(iso) {
  const d = new Date(iso);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/** The account's calendar presence (gi_status_json's `presence`): nothing when it is null
 *  (calendar off for the account), else free, free with the next meeting, busy until, or
 *  unknown. `data-presence` holds the state and `data-until` the plugin's time, for tests. */
function renderPresence(p) {
  const el = $('presence');
  if (!p) {
    el.hidden = true;
    el.dataset.presence = 'none';
    delete el.dataset.until;
    el.title = '';
    $('presence-text').textContent = '';
    return;
  }
  const kind = ['free', 'busy', 'unknown'].includes(p.state) ? p.state : 'unknown';
  let text = 'unknown';
  if (kind === 'free') text = p.until ? `free (meeting at ${hhmm(p.until)})` : 'free';
  if (kind === 'busy') text = p.until ? `busy until ${hhmm(p.until)}` : 'busy';
  el.dataset.presence = kind;
  if (p.until && kind !== 'unknown') el.dataset.until = p.until; else delete el.dataset.until;
  $('presence-text').textContent = text;
  el.title = p.updated
    ? `Google Calendar last read at ${new Date(p.updated).toLocaleTimeString()}`
    : 'Google Calendar not read yet';
  el.hidden = false;
}

const SOURCE_NAMES = { contacts: 'Contacts', directory: 'Workspace directory',
                       other_contacts: 'Other contacts' };

/** Each configured contact source (gi_status_json's `sources`): its contacts and numbers, or
 *  why its last sync failed. Shown when more than one source is configured, or one failed. */
function renderSources(s) {
  const list = $('sources');
  const sources = Object.entries(s.sources || {});
  const failed = sources.some(([, r]) => r.last_error);
  list.replaceChildren();
  list.hidden = s.status === 'disconnected' || (sources.length < 2 && !failed);
  for (const [name, r] of sources) {
    const li = document.createElement('li');
    li.dataset.source = name;
    const title = document.createElement('b');
    title.textContent = SOURCE_NAMES[name] || name;
    const what = document.createElement('span');
    what.className = 'source-counts';
    what.textContent = `${(r.contacts || 0).toLocaleString()} contacts · ${(r.numbers || 0).toLocaleString()} numbers`;
    li.append(title, what);
    if (r.last_error) {
      li.classList.add('failed');
      const error = document.createElement('span');
      error.className = 'source-error';
      error.textContent = r.last_error;
      li.append(error);
    }
    list.append(li);
  }
}

function render(s) {
  state.lastStatus = s;
  const kind = LOOK[s.status] ? s.status : 'disconnected';
  const look = LOOK[kind];
  const box = $('status');
  box.className = `status ${kind}${s.syncing ? ' syncing' : ''}`;
  box.dataset.status = kind;
  $('status-icon').textContent = look.icon;
  $('status-text').textContent = look.text + (s.syncing ? ' · syncing…' : '');
  $('status-sub').textContent = look.sub;

  const reason = $('reason');
  if (kind === 'issue' && s.reason) {
    // The plugin's reason says what happened and what the administrator should do.
    reason.replaceChildren();
    const head = document.createElement('b');
    head.textContent = 'What happened, and what to do';
    reason.append(head, sentence(s.reason));
    reason.hidden = false;
  } else {
    reason.hidden = true;
  }
  renderPresence(s.presence);

  $('contacts').textContent = (s.contacts || 0).toLocaleString();
  $('numbers').textContent = (s.numbers || 0).toLocaleString();
  renderSources(s);
  if (s.last_sync) {
    const at = new Date(s.last_sync);
    $('last-sync').textContent = `${at.toLocaleTimeString()} · ${ago(at)}`;
    $('last-sync').title = s.last_sync;
  } else {
    $('last-sync').textContent = 'never';
  }
  // A sync (or Disable) changed the contacts: search again, on the same page.
  const synced = `${s.account}|${s.last_sync}|${s.contacts}|${s.status}`;
  if (state.book.synced !== null && state.book.synced !== synced && !s.syncing) searchBook();
  state.book.synced = synced;

  $('disable').hidden = kind === 'disconnected';
  $('sync-now').disabled = kind === 'disconnected';

  // After "Sync now", say how it ended (an issue speaks for itself in the box above).
  const w = state.awaitingSync;
  if (w && w.account === s.account && !s.syncing) {
    if (s.last_sync !== w.last) {
      showMessage('ok', `Synced ${s.account}: ${(s.contacts || 0).toLocaleString()} contacts.`);
      state.awaitingSync = null;
    } else if (kind !== w.status || Date.now() - w.since > 15000) {
      if (kind === 'issue') showMessage('', '');
      state.awaitingSync = null;
    }
  }
}

async function refresh() {
  if (!state.account || state.polling) return;
  state.polling = true;
  const account = state.account;
  try {
    const s = await api('/api/status?account=' + encodeURIComponent(account));
    if (account === state.account) render(s);
  } catch (e) {
    showMessage('error', e.message);
  } finally {
    state.polling = false;
  }
}

function fillAccounts(accounts, selected) {
  const select = $('account');
  select.replaceChildren();
  for (const a of accounts) {
    const o = document.createElement('option');
    o.value = a;
    o.textContent = a.includes('/') ? `${a}  (user)` : `${a}  (domain)`;
    select.append(o);
  }
  if (selected && accounts.includes(selected)) select.value = selected;
  state.account = select.value;
}

function selectAccount(account) {
  if (![...$('account').options].some((o) => o.value === account)) {
    fillAccounts([...[...$('account').options].map((o) => o.value), account], account);
  }
  $('account').value = account;
  onAccountChange();
}

function onAccountChange() {
  state.account = $('account').value;
  try { localStorage.setItem('gi-account', state.account); } catch (e) { /* private mode */ }
  $('call-result').hidden = true;
  state.book.offset = 0;
  state.book.synced = null;
  searchBook();
  const user = (state.info?.users || []).find((u) => u.account === state.account);
  if (user) $('fault-user').value = user.email;
  refresh();
}

// ---- Connect: the popup to Google's consent page ----

function onResult(data) {
  if (!data || data.type !== 'gi-oauth' || state.seen.has(data.id)) return;
  state.seen.add(data.id);
  const account = data.account || state.pending?.account || state.account;
  if (state.pending) state.pending.done = true;
  if (data.ok) {
    selectAccount(account);
    showMessage('ok', data.message);
  } else {
    // The plugin's message (gi_last_error) says what to do.
    showMessage('error', sentence(data.message), data.title);
  }
  refresh();
}

function watchPopup(popup, pending) {
  const timer = setInterval(() => {
    if (!popup.closed) return;
    clearInterval(timer);
    // The result message is delivered before the popup closes; allow it a moment anyway.
    setTimeout(() => {
      if (!pending.done && state.pending === pending) {
        showMessage('error', `The Google window was closed before finishing, so ${pending.account} is not connected. Press “Get auth code” to try again.`);
      }
    }, 800);
  }, 400);
}

async function getAuthCode() {
  const account = state.account;
  // Open the window inside the click, before any await: browsers allow a pop-up only then.
  const popup = window.open('', 'gi-google-consent', 'popup=yes,width=520,height=720');
  if (!popup || popup.closed || typeof popup.closed === 'undefined') {
    showMessage('error', 'Allow pop-ups for this site (the blocked-pop-up icon at the right of the address bar, or Site settings › Pop-ups and redirects), then press “Get auth code” again.', 'Your browser blocked the pop-up window for Google’s sign-in');
    return;
  }
  try { popup.document.title = 'Opening Google…'; popup.document.body.textContent = 'Opening Google…'; } catch (e) { /* reused window elsewhere */ }
  try {
    const { url } = await api('/api/auth-url', { account });
    const pending = { account, done: false };
    state.pending = pending;
    popup.location.href = url;
    watchPopup(popup, pending);
    showMessage('info', `Sign in with Google in the pop-up window and allow access for ${account}.`);
  } catch (e) {
    popup.close();
    showMessage('error', e.message);
  }
}

window.addEventListener('message', (e) => {
  const origins = [location.origin, state.info?.callback_origin];
  if (!origins.includes(e.origin)) return;
  onResult(e.data);
});
if ('BroadcastChannel' in window) {
  new BroadcastChannel('gi-oauth').onmessage = (e) => onResult(e.data);
}

// ---- Actions ----

async function run(button, work) {
  button.disabled = true;
  try { await work(); } catch (e) { showMessage('error', e.message); } finally {
    button.disabled = false;
    await refresh();
  }
}

function ring(event) {
  event.preventDefault();
  const number = $('call-number').value.trim();
  const out = $('call-result');
  if (!number) { $('call-number').focus(); return; }
  run($('call-ring'), async () => {
    out.hidden = false;
    out.className = 'phone';
    out.replaceChildren();
    const line = (cls, text, id) => {
      const d = document.createElement('div');
      d.className = cls; d.textContent = text; if (id) d.id = id;
      out.append(d);
    };
    try {
      const r = await api('/api/lookup', { account: state.account, number });
      line('ringing', `Incoming call · ${state.account}`);
      if (r.found) {
        const c = r.contact;
        line('name', c.name || c.company, 'call-name');
        if (c.name && c.company && c.company !== c.name) line('company', c.company, 'call-company');
        line('detail', `${c.label || 'phone'} · ${c.number}`, 'call-number-shown');
        const from = c.source && c.source !== 'contacts'
          ? (SOURCE_NAMES[c.source] || c.source).toLowerCase() : 'contacts';
        line('detail', `${from} of ${c.account} · lookup ${r.took}`, 'call-source');
      } else {
        out.classList.add('unknown');
        line('name', 'Unknown caller', 'call-name');
        line('company', number);
        line('detail', `No contact of ${state.account} has this number · lookup ${r.took}`);
      }
    } catch (e) {
      out.className = 'phone error';
      line('detail', e.message);
    }
  });
}

// ---- Address book: gi_search_contacts ----

/** Searches at once with what the box holds, on page `state.book.offset`. */
async function searchBook() {
  const book = state.book;
  clearTimeout(book.timer);
  if (!state.account) return;
  const seq = ++book.seq;
  const account = state.account;
  const q = $('book-query').value;
  const params = new URLSearchParams({
    account, q, mode: book.keypad ? 'keypad' : 'text',
    offset: String(book.offset), limit: String(book.limit),
  });
  let r;
  try {
    r = await api('/api/search?' + params);
  } catch (e) {
    if (seq !== book.seq) return;
    $('book-error').textContent = sentence(e.message);
    $('book-error').hidden = false;
    $('book-card').dataset.state = 'error';
    $('book-summary').textContent = '';
    $('book-rows').replaceChildren();
    $('book-pager').hidden = true;
    return;
  }
  if (seq !== book.seq) return; // a newer search is under way
  // Past the end (contacts removed since): go back to the last page.
  if (r.rows.length === 0 && r.total > 0 && book.offset > 0) {
    book.offset = Math.max(0, Math.floor((r.total - 1) / book.limit) * book.limit);
    searchBook();
    return;
  }
  book.total = r.total;
  $('book-error').hidden = true;
  showBook(r, q.trim(), account);
}

function showBook(r, q, account) {
  const book = state.book;
  const list = $('book-rows');
  list.replaceChildren();
  for (const c of r.rows) list.append(contactRow(c, account));
  const count = r.total.toLocaleString();
  let summary;
  if (r.total === 0 && !q) {
    const which = account.includes('/') ? 'it (or its domain)' : 'it';
    summary = `No contacts for ${account} yet: connect ${which} to Google and they show here.`;
  } else if (r.total === 0) {
    summary = book.keypad ? `Nothing spells ${q} on the keypad.` : `Nothing matches “${q}”.`;
  } else if (!q) {
    summary = `${count} ${r.total === 1 ? 'number' : 'numbers'} in the address book · ${r.took}`;
  } else {
    const what = book.keypad ? `${q} on the keypad` : `“${q}”`;
    summary = `${count} ${r.total === 1 ? 'match' : 'matches'} for ${what} · ${r.took}`;
  }
  $('book-summary').textContent = summary;
  $('book-card').dataset.state = r.total === 0 ? 'empty' : 'rows';
  const first = r.rows.length ? book.offset + 1 : 0;
  $('book-page').textContent = `${first.toLocaleString()}–${(book.offset + r.rows.length).toLocaleString()} of ${count}`;
  $('book-prev').disabled = book.offset === 0;
  $('book-next').disabled = book.offset + r.rows.length >= r.total;
  $('book-pager').hidden = r.total <= book.limit && book.offset === 0;
}

/** One row: name and company, label and number, the contact's groups as chips, and whose
 *  contact it is when it is not the account's own. Text only: nothing is read as HTML. */
function contactRow(c, account) {
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const li = el('li', 'contact');
  const who = el('div', 'who');
  who.append(el('span', 'name', c.name || '(no name)'));
  if (c.company && c.company !== c.name) who.append(el('span', 'company', c.company));
  const tel = el('div', 'tel');
  tel.append(el('span', 'label', c.label || 'phone'), el('span', 'number', c.number));
  li.append(who, tel);
  const from = [];
  if (c.account !== account) from.push(`from ${c.account}`);
  if (c.source && c.source !== 'contacts') from.push(c.source.replace('_', ' '));
  if (c.groups.length || from.length) {
    const meta = el('div', 'meta');
    for (const g of c.groups) meta.append(el('span', 'chip', g));
    if (from.length) meta.append(el('span', 'from', from.join(' · ')));
    li.append(meta);
  }
  return li;
}

/** Typing searches after a short pause, from the first page. */
function searchSoon() {
  state.book.offset = 0;
  clearTimeout(state.book.timer);
  state.book.timer = setTimeout(searchBook, 200);
}

function setKeypad(on) {
  const book = state.book;
  if (book.keypad === on) return;
  book.keypad = on;
  const box = $('book-query');
  $('book-keypad').setAttribute('aria-pressed', String(on));
  $('book-keypad').classList.toggle('on', on);
  $('keypad').hidden = !on;
  box.inputMode = on ? 'numeric' : 'search';
  box.placeholder = on ? 'Digits 2–9, as on a phone: 6855 for Müller' : 'Name, company, group or number';
  // Text and digits mean different things: start the new mode empty.
  box.value = '';
  book.offset = 0;
  searchBook();
  box.focus();
}

function pressKey(digit) {
  const box = $('book-query');
  box.value = digit === null ? box.value.slice(0, -1) : box.value + digit;
  searchSoon();
}

/** Minutes from now as the fault API reads them: "+5", "-5". */
function fromNow(minutes) {
  return minutes < 0 ? String(minutes) : `+${minutes}`;
}

async function fault(button) {
  const body = {
    action: button.dataset.action,
    email: $('fault-user').value,
    status: Number(button.dataset.status || 503),
    count: 2,
    source: button.dataset.source || 'contacts',
  };
  if (body.action === 'busy') {
    const start = Number($('meeting-start').value);
    const length = Number($('meeting-length').value);
    if ($('meeting-start').value === '' || !Number.isFinite(start) || !Number.isFinite(length) || length <= 0) {
      showMessage('error', 'Give the meeting a start in minutes from now (0 for now, -5 for five minutes ago) and a length of at least one minute.');
      return;
    }
    body.start = fromNow(start);
    body.end = fromNow(start + length);
  }
  await run(button, async () => {
    const r = await api('/api/fault', body);
    showFaultState(r, r.done);
  });
}

function showFaultState(r, done) {
  const parts = [];
  if (done) parts.push(done + '.');
  if (r.queued_people_faults) parts.push(`Queued People faults: ${r.queued_people_faults}.`);
  if (r.sticky) parts.push(`Sticky: ${r.sticky}.`);
  const meetings = Object.entries(r.meetings || {})
    .map(([email, busy]) => `${email} ${busy.map((b) => `${hhmm(b.start)}–${hhmm(b.end)}`).join(', ')}`);
  if (meetings.length) parts.push(`Meetings: ${meetings.join('; ')}.`);
  $('fault-state').textContent = parts.join(' ') || 'No faults.';
}

async function init() {
  $('account').addEventListener('change', onAccountChange);
  $('get-auth-code').addEventListener('click', getAuthCode);
  $('sync-now').addEventListener('click', (e) => run(e.currentTarget, async () => {
    const before = state.lastStatus || {};
    await api('/api/sync-now', { account: state.account });
    state.awaitingSync = { account: state.account, last: before.last_sync, status: before.status, since: Date.now() };
    showMessage('info', `Syncing ${state.account} with Google…`);
  }));
  $('disable').addEventListener('click', (e) => run(e.currentTarget, async () => {
    const account = state.account;
    await api('/api/disable', { account });
    showMessage('ok', `Disabled ${account}: its access was revoked at Google and its contacts removed from the PBX.`);
  }));
  $('account-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const account = $('account-new').value.trim();
    run($('account-add'), async () => {
      await api('/api/accounts', { account });
      $('account-new').value = '';
      selectAccount(account);
      showMessage('', '');
    });
  });
  $('call-form').addEventListener('submit', ring);
  $('book-query').addEventListener('input', searchSoon);
  $('book-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.book.offset = 0;
    searchBook();
  });
  $('book-keypad').addEventListener('click', () => setKeypad(!state.book.keypad));
  for (const k of document.querySelectorAll('#keypad .key')) {
    k.addEventListener('click', () => pressKey(k.dataset.digit || null));
  }
  $('book-prev').addEventListener('click', () => {
    state.book.offset = Math.max(0, state.book.offset - state.book.limit);
    searchBook();
  });
  $('book-next').addEventListener('click', () => {
    if (state.book.offset + state.book.limit < state.book.total) {
      state.book.offset += state.book.limit;
      searchBook();
    }
  });
  for (const b of document.querySelectorAll('#dev-panel .faults button')) {
    b.addEventListener('click', () => fault(b));
  }

  try {
    state.info = await api('/api/info');
  } catch (e) {
    showMessage('error', e.message);
    return;
  }
  const info = state.info;
  $('version').textContent = `${info.version} · ${info.mode === 'fake' ? 'fake Google on 127.0.0.1' : 'Google'}`;
  $('mode').textContent = info.mode === 'fake' ? 'host-sim · fake Google' : 'host-sim · Google';
  let saved = null;
  try { saved = localStorage.getItem('gi-account'); } catch (e) { /* private mode */ }
  fillAccounts(info.accounts, saved);
  if (info.mode === 'fake') {
    for (const u of info.users) {
      const o = document.createElement('option');
      o.value = u.email;
      o.textContent = `${u.name} <${u.email}>`;
      $('fault-user').append(o);
    }
    $('data-dir').textContent = `data_dir: ${info.data_dir} (for host-sim call ACCOUNT NUMBER --data-dir …)`;
    $('dev-panel').hidden = false;
    api('/api/fake').then((r) => showFaultState(r)).catch(() => {});
  }
  if (info.callback_origin !== location.origin) {
    showMessage('info', `Open this page at ${info.callback_origin}/ : Google sends the browser back there after sign-in, and this page hears about it only on the same address.`);
  }
  onAccountChange();
  setInterval(refresh, 1000);
}

document.addEventListener('DOMContentLoaded', init);
