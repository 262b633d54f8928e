// The live tree of one directory (docs/web.md). Names and bodies come from
// the store and may hold anything, markup included: they reach the page only
// through textContent and text nodes, never as HTML.
(function () {
  'use strict';

  var TRUNCATE = 200; // characters of a text body shown before "show all"
  var HEX_PREVIEW = 16; // bytes of a binary body shown in hex
  var HIGHLIGHT_MS = 1500; // how long a changed row stays highlighted
  var LIVENESS_MS = 40000; // reopen the stream after this long without a word
  var SILENT_MS = 5000; // a liveness reopen shows "reconnecting" after this
  var RETRY_MIN_MS = 1000;
  var RETRY_MAX_MS = 30000;

  var dir = currentDir(location.pathname);
  var treeEl = document.getElementById('tree');
  var statusEl = document.getElementById('status');
  var emptyEl = document.getElementById('empty');

  var rev = null; // the last rev applied (ready, change or rev)
  var loaded = false; // a ready has been seen at least once
  var listing = false; // between reset and ready
  var previous = null; // path -> rev before a reset, to highlight differences
  var state = 'connecting';
  var files = new Map(); // path -> file row
  var dirs = new Map(); // path -> directory element
  var collapsed = loadSet('doozer.collapsed'); // directory paths
  var expanded = new Set(); // file paths whose long body is shown whole

  var es = null;
  var livenessTimer = null;
  var silentTimer = null;
  var retryTimer = null;
  var retryDelay = RETRY_MIN_MS;

  // --- helpers ------------------------------------------------------------

  function currentDir(pathname) {
    var d = pathname.slice(0, pathname.lastIndexOf('/') + 1);
    return d.charAt(0) === '/' ? d : '/';
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function dirHref(path) {
    // path: "/a/b" -> "/a/b/" (names are plain, encode anyway)
    return path.split('/').map(encodeURIComponent).join('/') + '/';
  }

  function loadSet(key) {
    try {
      var v = JSON.parse(localStorage.getItem(key) || '[]');
      return new Set(Array.isArray(v) ? v : []);
    } catch (e) {
      return new Set();
    }
  }

  function saveSet(key, set) {
    try {
      localStorage.setItem(key, JSON.stringify(Array.from(set)));
    } catch (e) {
      // storage off: collapsed state lasts as long as the page
    }
  }

  // --- header -------------------------------------------------------------

  function renderCrumbs() {
    var nav = document.getElementById('crumbs');
    var brand = el('a', 'brand', 'doozer');
    brand.href = '/';
    nav.appendChild(brand);
    var names = dir.split('/').filter(function (s) { return s !== ''; });
    var root = el('a', 'crumb', '/');
    root.href = '/';
    nav.appendChild(root);
    var path = '';
    names.forEach(function (n) {
      path += '/' + n;
      var a = el('a', 'crumb', n + '/');
      a.href = dirHref(path);
      nav.appendChild(a);
    });
    nav.lastChild.setAttribute('aria-current', 'page');
    var past = document.getElementById('pastlink');
    if (past) past.href = '/$tree?dir=' + encodeURIComponent(dir);
    document.title = dir + ' · doozer';
  }

  function setState(s, extra) {
    state = s;
    statusEl.setAttribute('data-state', s);
    var text;
    if (s === 'connected') text = 'connected (rev ' + rev + ')';
    else if (s === 'reconnecting') text = 'reconnecting…';
    else if (s === 'disconnected') text = 'disconnected' + (extra || '');
    else text = 'connecting…';
    statusEl.textContent = text;
  }

  function setRev(n) {
    if (typeof n !== 'number' || !isFinite(n)) return;
    rev = n;
    statusEl.setAttribute('data-rev', String(n));
    if (state === 'connected') setState('connected');
  }

  function updateEmpty() {
    var none = loaded && !listing && files.size === 0;
    emptyEl.hidden = !none;
    emptyEl.textContent = none ? 'No files under ' + dir + ' (yet).' : '';
  }

  // --- bodies -------------------------------------------------------------

  // Characters that would be invisible or would move text around: shown as
  // escapes, never interpreted.
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
  function appendVisible(parent, text, breakLines) {
    var run = '';
    for (var i = 0; i < text.length; i++) {
      var ch = text.charAt(i);
      if (!INVISIBLE.test(ch)) {
        run += ch;
        continue;
      }
      if (run) parent.appendChild(document.createTextNode(run));
      run = '';
      var m = el('span', 'ctl', escapeFor(ch));
      m.title = 'U+' + ('000' + ch.charCodeAt(0).toString(16).toUpperCase()).slice(-4);
      parent.appendChild(m);
      if (breakLines && ch === '\n') parent.appendChild(document.createElement('br'));
    }
    if (run) parent.appendChild(document.createTextNode(run));
  }

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

  function renderBody(cell, f) {
    cell.textContent = '';
    cell.classList.toggle('binary', f.enc === 'base64');
    if (f.enc === 'base64') {
      var bytes = decodeBase64(f.body || '');
      var n = typeof f.len === 'number' ? f.len : bytes.length;
      cell.appendChild(el('span', 'meta', '<binary, ' + n + ' bytes>'));
      var hex = [];
      for (var i = 0; i < Math.min(bytes.length, HEX_PREVIEW); i++) {
        hex.push((bytes[i] < 16 ? '0' : '') + bytes[i].toString(16));
      }
      if (hex.length) {
        cell.appendChild(document.createTextNode(' '));
        cell.appendChild(el('span', 'hex', hex.join(' ') + (bytes.length > HEX_PREVIEW ? ' …' : '')));
      }
      return;
    }
    var text = String(f.body === undefined || f.body === null ? '' : f.body);
    var chars = Array.from(text); // code points: never cut a pair in two
    var long = chars.length > TRUNCATE;
    var whole = !long || expanded.has(f.path);
    appendVisible(cell, whole ? text : chars.slice(0, TRUNCATE).join(''), whole && long);
    if (long) {
      var more = el('button', 'more', whole ? ' show less' : '… show all (' + chars.length + ' chars, ' + f.len + ' bytes)');
      more.type = 'button';
      cell.appendChild(more);
    }
  }

  // --- the tree -----------------------------------------------------------

  function under(path) {
    return typeof path === 'string' && path.length > dir.length && path.slice(0, dir.length) === dir;
  }

  // Inserts e (with e._name) into container, keeping names sorted bytewise.
  function insertSorted(container, e) {
    var last = container.lastElementChild;
    if (!last || last._name < e._name) {
      container.appendChild(e);
      return;
    }
    for (var c = container.firstElementChild; c; c = c.nextElementSibling) {
      if (c._name > e._name) {
        container.insertBefore(e, c);
        return;
      }
    }
    container.appendChild(e);
  }

  function updateCount(container) {
    if (container === treeEl) return;
    var n = container.childElementCount;
    container.parentNode._count.textContent = n + (n === 1 ? ' entry' : ' entries');
  }

  function makeDir(path, name, depth) {
    var d = el('div', 'dir');
    d.setAttribute('data-dir', path);
    d._name = name;
    var row = el('div', 'row dirrow');
    row.style.setProperty('--depth', depth);
    var toggle = el('button', 'name toggle');
    toggle.type = 'button';
    toggle.appendChild(el('span', 'twisty'));
    toggle.appendChild(document.createTextNode(name + '/'));
    toggle.addEventListener('click', function () {
      setCollapsed(d, !d.classList.contains('collapsed'));
    });
    row.appendChild(toggle);
    row.appendChild(el('span', 'rev'));
    d._count = el('span', 'len');
    row.appendChild(d._count);
    var cell = el('span', 'body');
    var open = el('a', 'open', path + '/');
    open.href = dirHref(path);
    open.title = 'open ' + path + '/ on its own';
    cell.appendChild(open);
    row.appendChild(cell);
    d._row = row;
    d._children = el('div', 'children');
    d.appendChild(row);
    d.appendChild(d._children);
    setCollapsed(d, collapsed.has(path), true);
    return d;
  }

  function setCollapsed(d, on, quiet) {
    var path = d.getAttribute('data-dir');
    d.classList.toggle('collapsed', on);
    d._row.firstChild.setAttribute('aria-expanded', on ? 'false' : 'true');
    if (quiet) return;
    if (on) collapsed.add(path);
    else collapsed.delete(path);
    saveSet('doozer.collapsed', collapsed);
  }

  // Removes a file row or a directory element, and whatever it holds.
  function removeNode(node) {
    if (node.hasAttribute('data-path')) {
      files.delete(node.getAttribute('data-path'));
    } else {
      dirs.delete(node.getAttribute('data-dir'));
      Array.prototype.forEach.call(node.querySelectorAll('[data-path]'), function (r) {
        files.delete(r.getAttribute('data-path'));
      });
      Array.prototype.forEach.call(node.querySelectorAll('[data-dir]'), function (r) {
        dirs.delete(r.getAttribute('data-dir'));
      });
    }
    var container = node.parentNode;
    container.removeChild(node);
    // A directory exists only while it holds a file.
    while (container !== treeEl && !container.firstElementChild) {
      var d = container.parentNode;
      dirs.delete(d.getAttribute('data-dir'));
      container = d.parentNode;
      container.removeChild(d);
    }
    updateCount(container);
  }

  // The children container of the directory holding the file named by
  // parts (relative to dir), creating directories on the way.
  function ensureDirs(parts) {
    var container = treeEl;
    var path = dir.slice(0, -1);
    for (var i = 0; i < parts.length - 1; i++) {
      path += '/' + parts[i];
      var d = dirs.get(path);
      if (!d) {
        var clash = files.get(path); // was a file, is a directory now
        if (clash) removeNode(clash);
        d = makeDir(path, parts[i], i);
        dirs.set(path, d);
        insertSorted(container, d);
        updateCount(container);
      }
      container = d._children;
    }
    return container;
  }

  function makeFile(path, name, depth) {
    var row = el('div', 'row file');
    row.setAttribute('data-path', path);
    row._name = name;
    row.style.setProperty('--depth', depth);
    var nm = el('span', 'name');
    appendVisible(nm, name, false);
    nm.title = path;
    row.appendChild(nm);
    // The rev opens the file's history (docs/web.md#history).
    row._rev = row.appendChild(el('a', 'rev'));
    row._rev.href = '/$history?path=' + encodeURIComponent(path);
    row._rev.title = 'the history of ' + path;
    row._len = row.appendChild(el('span', 'len'));
    row._body = row.appendChild(el('span', 'body'));
    // A long body opens on a click anywhere in it, and closes only through
    // its "show less" button (so its text can be selected).
    row._body.addEventListener('click', function (ev) {
      if (!row._body.querySelector('.more')) return;
      if (expanded.has(path)) {
        if (!ev.target.classList.contains('more')) return;
        expanded.delete(path);
      } else {
        expanded.add(path);
      }
      renderBody(row._body, row._file);
    });
    return row;
  }

  function upsert(f, highlight) {
    if (!under(f.path)) return;
    var row = files.get(f.path);
    if (!row) {
      var clash = dirs.get(f.path); // was a directory, is a file now
      if (clash) removeNode(clash);
      var parts = f.path.slice(dir.length).split('/');
      var container = ensureDirs(parts);
      row = makeFile(f.path, parts[parts.length - 1], parts.length - 1);
      files.set(f.path, row);
      insertSorted(container, row);
      updateCount(container);
    }
    row._file = f;
    row._stale = false;
    row.classList.remove('stale');
    row._rev.textContent = String(f.rev);
    row._len.textContent = String(f.len);
    row._len.title = f.len + ' bytes';
    renderBody(row._body, f);
    if (highlight) flash(row);
  }

  function flash(row) {
    restartFlash(row);
    // Inside a collapsed directory: flash the outermost collapsed one too.
    var shown = null;
    for (var p = row.parentNode; p && p !== treeEl; p = p.parentNode) {
      if (p.classList.contains('dir') && p.classList.contains('collapsed')) shown = p;
    }
    if (shown) restartFlash(shown._row);
  }

  function restartFlash(e) {
    e.classList.remove('changed');
    void e.offsetWidth; // restart the animation
    e.classList.add('changed');
    clearTimeout(e._flash);
    e._flash = setTimeout(function () {
      e.classList.remove('changed');
    }, HIGHLIGHT_MS);
  }

  function showTarget() {
    var target = '';
    try {
      target = decodeURIComponent(location.hash.slice(1));
    } catch (e) {
      return;
    }
    var row = files.get(target) || (dirs.get(target) && dirs.get(target)._row);
    if (!row) return;
    for (var p = row.parentNode; p && p !== treeEl; p = p.parentNode) {
      if (p.classList.contains('dir') && p.classList.contains('collapsed')) setCollapsed(p, false);
    }
    Array.prototype.forEach.call(document.querySelectorAll('.target'), function (e) {
      e.classList.remove('target');
    });
    row.classList.add('target');
    row.scrollIntoView({ block: 'center' });
  }

  // --- the stream ---------------------------------------------------------

  function data(e) {
    try {
      return JSON.parse(e.data);
    } catch (err) {
      if (window.console) console.warn('doozer: bad event data', e.type, e.data);
      return null;
    }
  }

  function eventRev(e, fallback) {
    var n = e.lastEventId === '' ? NaN : Number(e.lastEventId);
    return isFinite(n) ? n : fallback;
  }

  var handlers = {
    reset: function () {
      // Keep the rows until ready (no flicker, and a stream cut in the
      // middle of a listing loses nothing); rows not listed again go then.
      listing = true;
      previous = null;
      if (loaded) {
        previous = new Map();
        files.forEach(function (row, path) {
          previous.set(path, row._file.rev);
        });
      }
      files.forEach(function (row) {
        row._stale = true;
        row.classList.add('stale');
      });
    },
    file: function (e) {
      var f = data(e);
      if (!f) return;
      upsert(f, previous !== null && previous.get(f.path) !== f.rev);
    },
    ready: function (e) {
      var d = data(e) || {};
      if (listing) {
        var stale = [];
        files.forEach(function (row) {
          if (row._stale) stale.push(row);
        });
        stale.forEach(function (row) {
          if (row.parentNode) removeNode(row);
        });
        listing = false;
        previous = null;
      }
      setRev(eventRev(e, d.rev));
      var first = !loaded;
      loaded = true;
      clearTimeout(silentTimer);
      retryDelay = RETRY_MIN_MS;
      setState('connected');
      updateEmpty();
      if (first) showTarget();
    },
    change: function (e) {
      var c = data(e);
      if (!c) return;
      if (c.kind === 'del') {
        var row = files.get(c.path);
        if (row) removeNode(row);
      } else {
        upsert(c, true);
      }
      setRev(eventRev(e, c.rev));
      updateEmpty();
    },
    rev: function (e) {
      var d = data(e) || {};
      setRev(eventRev(e, d.rev));
    },
    ping: function () {},
    message: function () {},
  };

  function alive() {
    clearTimeout(livenessTimer);
    livenessTimer = setTimeout(function () {
      connect(true); // silence: the connection may be dead without an error
    }, LIVENESS_MS);
  }

  function connect(silent) {
    clearTimeout(retryTimer);
    clearTimeout(silentTimer);
    if (es) es.close();
    // Our own (re)connections resume with ?rev=; the browser's resend
    // Last-Event-ID by themselves.
    var url = '/$events' + dir + (rev !== null ? '?rev=' + rev : '');
    var src = new EventSource(url);
    es = src;
    src.onopen = function () {
      if (src === es) alive();
    };
    src.onerror = function () {
      if (src !== es) return;
      clearTimeout(silentTimer);
      if (src.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error, a wrong content type).
        retryLater();
      } else {
        setState('reconnecting');
        alive();
      }
    };
    Object.keys(handlers).forEach(function (name) {
      src.addEventListener(name, function (e) {
        if (src !== es) return;
        alive();
        handlers[name](e);
      });
    });
    alive();
    if (silent && state === 'connected') {
      silentTimer = setTimeout(function () {
        if (src === es) setState('reconnecting');
      }, SILENT_MS);
    } else if (loaded) {
      setState('reconnecting');
    }
  }

  function retryLater() {
    if (es) es.close();
    es = null;
    clearTimeout(livenessTimer);
    var at = Date.now() + retryDelay;
    retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
    (function tick() {
      var left = Math.ceil((at - Date.now()) / 1000);
      if (left <= 0) {
        connect(false);
        setState('reconnecting');
        return;
      }
      setState('disconnected', ' (retrying in ' + left + ' s)');
      retryTimer = setTimeout(tick, 1000);
    })();
  }

  window.addEventListener('online', function () {
    if (state === 'disconnected') connect(false);
  });
  window.addEventListener('hashchange', showTarget);

  renderCrumbs();
  setState('connecting');
  connect(false);
})();
