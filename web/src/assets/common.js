// Shared by the cluster, history and past-tree pages (docs/web.md). Text
// from the store (names, bodies, ids, addresses) reaches the page only
// through textContent and text nodes, never as HTML. One global: doozer.
(function () {
  'use strict';

  var RETRY_MIN_MS = 1000;
  var RETRY_MAX_MS = 10000;
  var TIMEOUT_MS = 5000;
  var HEX_PREVIEW = 16; // bytes of a binary body shown in hex
  var TRUNCATE = 400; // characters of a text body shown before "show all"

  var D = {};

  D.el = function (tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };

  // Characters that would be invisible or would move text around: shown as
  // escapes, never interpreted (as on the tree page).
  var INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;
  var NAMED = { '\n': '\\n', '\t': '\\t', '\r': '\\r', '\u0000': '\\0' };

  function escapeFor(ch) {
    if (NAMED[ch]) return NAMED[ch];
    var c = ch.charCodeAt(0);
    if (c < 0x100) return '\\x' + (c < 16 ? '0' : '') + c.toString(16);
    return '\\u{' + c.toString(16) + '}';
  }

  // Appends text to parent, control and invisible characters as visible
  // escapes; a newline also breaks the line when breakLines is set.
  D.appendVisible = function (parent, text, breakLines) {
    text = String(text === undefined || text === null ? '' : text);
    var run = '';
    for (var i = 0; i < text.length; i++) {
      var ch = text.charAt(i);
      if (!INVISIBLE.test(ch)) {
        run += ch;
        continue;
      }
      if (run) parent.appendChild(document.createTextNode(run));
      run = '';
      parent.appendChild(D.el('span', 'ctl', escapeFor(ch)));
      if (breakLines && ch === '\n') parent.appendChild(document.createElement('br'));
    }
    if (run) parent.appendChild(document.createTextNode(run));
  };

  function decodeBase64(s) {
    try {
      var bin = atob(s);
      var out = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out;
    } catch (e) {
      return new Uint8Array(0);
    }
  }

  // Fills cell with a file object's body (docs/web.md, "File object"): text
  // as text (long ones cut, a click shows all), binary as its length and a
  // hex preview.
  D.renderBody = function (cell, f) {
    cell.textContent = '';
    cell.classList.toggle('binary', f.enc === 'base64');
    if (f.enc === 'base64') {
      var bytes = decodeBase64(f.body || '');
      var n = typeof f.len === 'number' ? f.len : bytes.length;
      cell.appendChild(D.el('span', 'meta', '<binary, ' + n + ' bytes>'));
      var hex = [];
      for (var i = 0; i < Math.min(bytes.length, HEX_PREVIEW); i++) {
        hex.push((bytes[i] < 16 ? '0' : '') + bytes[i].toString(16));
      }
      if (hex.length) {
        cell.appendChild(document.createTextNode(' '));
        cell.appendChild(D.el('span', 'hex', hex.join(' ') + (bytes.length > HEX_PREVIEW ? ' …' : '')));
      }
      return;
    }
    var text = String(f.body === undefined || f.body === null ? '' : f.body);
    var chars = Array.from(text); // code points: never cut a pair in two
    if (chars.length <= TRUNCATE) {
      D.appendVisible(cell, text, true);
      return;
    }
    D.appendVisible(cell, chars.slice(0, TRUNCATE).join(''), true);
    var more = D.el('button', 'more', '… show all (' + chars.length + ' chars)');
    more.type = 'button';
    more.addEventListener('click', function () {
      cell.textContent = '';
      D.appendVisible(cell, text, true);
    });
    cell.appendChild(more);
  };

  // The value of query parameter name in the page's URL, or null.
  D.query = function (name) {
    try {
      return new URLSearchParams(location.search).get(name);
    } catch (e) {
      return null;
    }
  };

  var statusEl = null;

  // Sets the status pill: data-state (connecting, connected, reconnecting,
  // disconnected), data-rev when known, and its words.
  D.setStatus = function (state, text, rev) {
    statusEl = statusEl || document.getElementById('status');
    if (!statusEl) return;
    statusEl.setAttribute('data-state', state);
    if (rev !== undefined && rev !== null) statusEl.setAttribute('data-rev', String(rev));
    statusEl.textContent = text;
  };

  // GET url as JSON. A 4xx/5xx rejects with the server's one-line reason
  // (err.status set); a network error or a timeout with err.status 0.
  D.getJSON = function (url) {
    var ctl = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = setTimeout(function () {
      if (ctl) ctl.abort();
    }, TIMEOUT_MS);
    return fetch(url, { cache: 'no-store', signal: ctl ? ctl.signal : undefined })
      .then(function (r) {
        if (r.ok) return r.json();
        return r.text().then(function (t) {
          var err = new Error((t || ('HTTP ' + r.status)).trim());
          err.status = r.status;
          throw err;
        });
      }, function (e) {
        var err = new Error(e && e.name === 'AbortError' ? 'no answer' : 'cannot reach the node');
        err.status = 0;
        throw err;
      })
      .then(function (v) {
        clearTimeout(timer);
        return v;
      }, function (e) {
        clearTimeout(timer);
        throw e;
      });
  };

  // Calls load() (which returns a promise) now and every periodMs; while it
  // fails to reach the node, the status says reconnecting, then
  // disconnected, and the calls back off up to RETRY_MAX_MS. Returns a
  // function that runs load() again at once.
  D.every = function (periodMs, load) {
    var failures = 0;
    var timer = null;
    var running = false;
    function run() {
      clearTimeout(timer);
      if (running) return;
      running = true;
      Promise.resolve()
        .then(load)
        .then(function () {
          failures = 0;
          return periodMs;
        }, function (err) {
          if (err && err.status) {
            failures = 0; // the node answered: the page shows why
            return periodMs;
          }
          failures++;
          D.setStatus(failures > 3 ? 'disconnected' : 'reconnecting',
            (failures > 3 ? 'disconnected' : 'reconnecting…') + ' (' + (err && err.message ? err.message : 'error') + ')');
          return Math.min(RETRY_MIN_MS * Math.pow(2, failures - 1), RETRY_MAX_MS);
        })
        .then(function (wait) {
          running = false;
          timer = setTimeout(run, wait);
        });
    }
    window.addEventListener('online', run);
    run();
    return run;
  };

  // Where a file's history and a directory at a rev are shown.
  D.historyHref = function (path) {
    return '/$history?path=' + encodeURIComponent(path);
  };
  D.treeHref = function (dir, rev) {
    return '/$tree?dir=' + encodeURIComponent(dir) + (rev !== undefined && rev !== null ? '&rev=' + rev : '');
  };

  window.doozer = D;
})();
