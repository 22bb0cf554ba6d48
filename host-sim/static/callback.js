// The page Google's redirect lands on, in the popup: tell the Google Integration page what
// gi_complete said, then close. The result carries no token or code.
'use strict';
(function () {
  const el = document.getElementById('callback-result');
  const d = el.dataset;
  const message = {
    type: 'gi-oauth',
    id: `${Date.now()}-${Math.random().toString(36).slice(2)}`,
    ok: d.ok === 'true',
    account: d.account,
    code: d.code,
    title: d.title,
    message: d.message,
  };
  let opener = null;
  try { opener = window.opener && !window.opener.closed ? window.opener : null; } catch (e) { opener = null; }
  if (opener) {
    try { opener.postMessage(message, location.origin); } catch (e) { /* opener elsewhere */ }
  }
  // Also for an opener that Google's pages cut off (Cross-Origin-Opener-Policy).
  try {
    const channel = new BroadcastChannel('gi-oauth');
    channel.postMessage(message);
    channel.close();
  } catch (e) { /* old browser */ }
  if (opener) {
    setTimeout(() => window.close(), 200);
  } else {
    document.getElementById('callback-hint').textContent =
      'Close this window and go back to the Google Integration page: it has been updated.';
  }
})();
