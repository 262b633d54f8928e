// The stats page: /$stats.json every second (docs/web.md). Values reach the
// page only through textContent.
(function () {
  'use strict';

  var PERIOD_MS = 1000;
  var TIMEOUT_MS = 5000;

  var mainEl = document.getElementById('stats');
  var statusEl = document.getElementById('status');
  var nodeEl = document.getElementById('node');

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // --- formats ------------------------------------------------------------

  function num(v) {
    if (typeof v !== 'number') return v === undefined || v === null ? '–' : String(v);
    return v.toLocaleString('en-US');
  }

  function mib(v) {
    if (typeof v !== 'number') return num(v);
    return (v / 1048576).toFixed(1) + ' MiB';
  }

  function bytes(v) {
    if (typeof v !== 'number') return num(v);
    if (v < 1024) return v + ' B';
    if (v < 1048576) return (v / 1024).toFixed(1) + ' KiB';
    return mib(v);
  }

  function duration(v) {
    if (typeof v !== 'number') return num(v);
    var s = Math.floor(v);
    var d = Math.floor(s / 86400);
    var h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60);
    var pad = function (n) { return (n < 10 ? '0' : '') + n; };
    if (d) return d + 'd ' + pad(h) + 'h ' + pad(m) + 'm';
    if (h) return h + 'h ' + pad(m) + 'm ' + pad(s % 60) + 's';
    if (m) return m + 'm ' + pad(s % 60) + 's';
    return v.toFixed(1) + ' s';
  }

  function str(v) {
    return v === undefined || v === null ? '–' : String(v);
  }

  // --- layout -------------------------------------------------------------

  // [section title, [[json key (a.b for nested), label, format]]]
  var SECTIONS = [
    ['node', [
      ['node_id', 'node id', str],
      ['cluster', 'cluster', str],
      ['role', 'role', str],
      ['version', 'version', str],
      ['uptime_s', 'uptime', duration],
      ['memory_rss_bytes', 'memory (RSS)', mib],
    ]],
    ['store', [
      ['rev', 'rev', num],
      ['history_oldest', 'history oldest rev', num],
      ['history_revs', 'history size (revs)', num],
      ['store_files', 'files', num],
      ['store_bytes', 'bytes in bodies', bytes],
    ]],
    ['clients', [
      ['clients', 'clients', num],
      ['web_clients', 'web clients', num],
      ['event_streams', 'event streams', num],
      ['waits_pending', 'waits pending', num],
    ]],
    ['requests', [
      ['requests', 'requests', num],
      ['reads', 'reads', num],
      ['writes', 'writes', num],
      ['waits', 'waits', num],
      ['errors', 'errors', num],
    ]],
    ['consensus', [
      ['consensus.instances_in_flight', 'instances in flight', num],
      ['consensus.proposals', 'proposals', num],
      ['consensus.fills', 'fills', num],
      ['consensus.retries', 'retries', num],
      ['consensus.datagrams_dropped', 'datagrams dropped', num],
      ['consensus.datagrams_unauthenticated', 'datagrams without a valid MAC', num],
    ]],
  ];
  var TABLED = { cals: true, 'consensus.messages_sent': true, 'consensus.messages_received': true };

  var cells = {}; // key -> value element
  var known = {}; // keys shown somewhere
  var calsBody, msgBody, otherSection, otherGrid, otherCells = {};

  function section(title) {
    var s = el('section');
    s.appendChild(el('h2', null, title));
    mainEl.appendChild(s);
    return s;
  }

  function card(grid, key, label) {
    var c = el('div', 'card');
    c.appendChild(el('span', 'k', label));
    var v = el('span', 'v', '–');
    v.setAttribute('data-field', key);
    c.appendChild(v);
    grid.appendChild(c);
    return v;
  }

  function table(parent, id, heads) {
    var wrap = el('div', 'scroll');
    var t = el('table');
    t.id = id;
    var tr = el('tr');
    heads.forEach(function (h) {
      tr.appendChild(el('th', h[1] ? 'num' : null, h[0]));
    });
    t.appendChild(el('thead')).appendChild(tr);
    var body = t.appendChild(el('tbody'));
    wrap.appendChild(t);
    parent.appendChild(wrap);
    return body;
  }

  function build() {
    SECTIONS.forEach(function (s) {
      var grid = section(s[0]).appendChild(el('div', 'grid'));
      s[1].forEach(function (f) {
        cells[f[0]] = card(grid, f[0], f[1]);
        known[f[0]] = true;
      });
      if (s[0] === 'consensus') {
        msgBody = table(grid.parentNode, 'messages', [['message kind'], ['sent', 1], ['received', 1]]);
      }
    });
    calsBody = table(section('CALs'), 'cals', [['slot'], ['id'], ['addr'], ['applied', 1]]);
    known.consensus = true;
    otherSection = section('other');
    otherGrid = otherSection.appendChild(el('div', 'grid'));
    otherSection.hidden = true;
  }

  function get(obj, key) {
    return key.split('.').reduce(function (o, k) {
      return o && typeof o === 'object' ? o[k] : undefined;
    }, obj);
  }

  function row(body, values, nums, cls) {
    var tr = el('tr', cls);
    values.forEach(function (v, i) {
      tr.appendChild(el('td', nums[i] ? 'num' : null, v));
    });
    body.appendChild(tr);
    return tr;
  }

  function render(s) {
    SECTIONS.forEach(function (sec) {
      sec[1].forEach(function (f) {
        cells[f[0]].textContent = f[2](get(s, f[0]));
        cells[f[0]].title = JSON.stringify(get(s, f[0])) || '';
      });
    });
    nodeEl.textContent = s.node_id ? s.node_id + ' · ' + str(s.cluster) + ' · ' + str(s.role) : '';
    document.title = 'stats ' + str(s.node_id) + ' · doozer';

    calsBody.textContent = '';
    var cals = Array.isArray(s.cals) ? s.cals : [];
    cals.forEach(function (c) {
      var tr = row(calsBody, [str(c.slot), str(c.id), str(c.addr), num(c.applied)], [0, 0, 0, 1],
        c.id === s.node_id ? 'self' : null);
      tr.setAttribute('data-slot', str(c.slot));
    });
    if (!cals.length) calsBody.appendChild(el('tr')).appendChild(el('td', 'none', 'no CALs'));

    msgBody.textContent = '';
    var sent = get(s, 'consensus.messages_sent') || {};
    var recv = get(s, 'consensus.messages_received') || {};
    var kinds = Object.keys(sent).concat(Object.keys(recv)).filter(function (k, i, a) {
      return a.indexOf(k) === i;
    }).sort();
    kinds.forEach(function (k) {
      row(msgBody, [k, num(sent[k] || 0), num(recv[k] || 0)], [0, 1, 1]).setAttribute('data-kind', k);
    });
    if (!kinds.length) msgBody.appendChild(el('tr')).appendChild(el('td', 'none', 'no messages yet'));

    // Fields this page does not know yet: shown raw rather than hidden.
    var extra = [];
    Object.keys(s).forEach(function (k) {
      if (k === 'consensus' && s.consensus && typeof s.consensus === 'object') {
        Object.keys(s.consensus).forEach(function (ck) {
          var key = 'consensus.' + ck;
          if (!known[key] && !TABLED[key]) extra.push(key);
        });
      } else if (!known[k] && !TABLED[k]) {
        extra.push(k);
      }
    });
    extra.forEach(function (k) {
      if (!otherCells[k]) otherCells[k] = card(otherGrid, k, k);
      var v = get(s, k);
      otherCells[k].textContent = typeof v === 'object' ? JSON.stringify(v) : str(v);
    });
    otherSection.hidden = extra.length === 0;
  }

  // --- polling ------------------------------------------------------------

  function setState(state, text, rev) {
    statusEl.setAttribute('data-state', state);
    if (rev !== undefined) statusEl.setAttribute('data-rev', String(rev));
    statusEl.textContent = text;
  }

  var failures = 0;

  function poll() {
    var ctl = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = setTimeout(function () {
      if (ctl) ctl.abort();
    }, TIMEOUT_MS);
    fetch('/$stats.json', { cache: 'no-store', signal: ctl ? ctl.signal : undefined })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (s) {
        failures = 0;
        render(s);
        setState('connected', 'connected (rev ' + num(s.rev) + ')', s.rev);
      })
      .catch(function (err) {
        failures++;
        setState(failures > 3 ? 'disconnected' : 'reconnecting',
          (failures > 3 ? 'disconnected' : 'reconnecting…') + ' (' + (err && err.message ? err.message : 'error') + ')');
      })
      .then(function () {
        clearTimeout(timer);
        setTimeout(poll, PERIOD_MS);
      });
  }

  build();
  poll();
})();
