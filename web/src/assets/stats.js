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

  function seconds(v) {
    return typeof v === 'number' ? v + ' s' : num(v);
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
      ['pulse_s', 'pulse (-pulse)', seconds],
      ['timeout_s', 'kick after (-timeout)', seconds],
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
  // Shown elsewhere (tables), or not for people (the /ctl layout, for the
  // cluster page).
  var TABLED = { cals: true, ctl: true, 'consensus.messages_sent': true, 'consensus.messages_received': true };

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
    buildCharts(section('last 15 minutes'));
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

  // --- charts -------------------------------------------------------------
  // One-second samples of the last 15 minutes, kept by the node
  // (/$samples.json, docs/web.md#samples), drawn on canvases by this page;
  // new samples are appended as they come.

  // [column, label, drawn as a rate per second, format]
  var CHARTS = [
    ['writes', 'writes/s', true, rate],
    ['reads', 'reads/s', true, rate],
    ['waits_pending', 'waits pending', false, num],
    ['clients', 'clients', false, num],
    ['rev', 'rev', false, num],
    ['rss_bytes', 'memory (RSS)', false, mib],
  ];
  var COLUMNS = ['t', 'writes', 'reads', 'waits_pending', 'clients', 'rev', 'rss_bytes'];
  var WINDOW_S = 900; // the most drawn: what the node keeps
  var MIN_WINDOW_S = 60; // the least: a young node's minute fills the width
  var series = null; // {next, kept, t: [...], writes: [...], ...}
  var charts = {}; // column -> {canvas, value}

  function rate(v) {
    if (typeof v !== 'number') return num(v);
    return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1);
  }

  function buildCharts(sec) {
    var grid = sec.appendChild(el('div', 'charts'));
    CHARTS.forEach(function (c) {
      var box = grid.appendChild(el('figure', 'chart'));
      var cap = box.appendChild(el('figcaption'));
      cap.appendChild(el('span', 'k', c[1]));
      var value = cap.appendChild(el('span', 'v', '–'));
      var canvas = box.appendChild(el('canvas'));
      canvas.setAttribute('data-series', c[0]);
      canvas.setAttribute('data-points', '0');
      canvas.setAttribute('role', 'img');
      canvas.setAttribute('aria-label', c[1] + ' over the last 15 minutes');
      canvas.width = 320;
      canvas.height = 90;
      charts[c[0]] = { canvas: canvas, value: value };
    });
  }

  // The values to draw: the column itself, or its rate per second between
  // consecutive samples (a counter that went down, a restart, counts 0).
  function values(col, asRate) {
    var t = series.t, v = series[col], out = [];
    for (var i = 0; i < t.length; i++) {
      if (!asRate) {
        out.push([t[i], v[i]]);
      } else if (i > 0 && t[i] > t[i - 1]) {
        out.push([t[i], Math.max(0, (v[i] - v[i - 1]) / (t[i] - t[i - 1]))]);
      }
    }
    return out;
  }

  function cssVar(name, fallback) {
    var v = getComputedStyle(document.body).getPropertyValue(name);
    return v && v.trim() ? v.trim() : fallback;
  }

  function draw() {
    if (!series) return;
    var end = series.t.length ? series.t[series.t.length - 1] : 0;
    var span = series.t.length ? Math.min(WINDOW_S, Math.max(MIN_WINDOW_S, end - series.t[0])) : WINDOW_S;
    var spanText = span >= 120 ? Math.round(span / 60) + ' min ago' : Math.round(span) + ' s ago';
    var line = cssVar('--accent', '#1f5fa8');
    var muted = cssVar('--muted', '#6b7075');
    var grid = cssVar('--line', '#e3e4e2');
    CHARTS.forEach(function (c) {
      var ch = charts[c[0]];
      var canvas = ch.canvas;
      var pts = values(c[0], c[2]);
      var ratio = window.devicePixelRatio || 1;
      var w = Math.max(120, Math.round(canvas.clientWidth || 320));
      var h = Math.max(60, Math.round(canvas.clientHeight || 90));
      if (canvas.width !== Math.round(w * ratio)) canvas.width = Math.round(w * ratio);
      if (canvas.height !== Math.round(h * ratio)) canvas.height = Math.round(h * ratio);
      var g = canvas.getContext('2d');
      g.setTransform(ratio, 0, 0, ratio, 0, 0);
      g.clearRect(0, 0, w, h);
      var lo = Infinity, hi = -Infinity;
      pts.forEach(function (p) {
        lo = Math.min(lo, p[1]);
        hi = Math.max(hi, p[1]);
      });
      // Rates and counts from zero; rev and memory around their range.
      var base = c[2] || c[0] === 'clients' || c[0] === 'waits_pending' ? 0 : lo;
      if (!isFinite(hi)) hi = 1;
      if (!isFinite(base)) base = 0;
      if (hi - base < 1e-9) hi = base + 1;
      var top = 14, bottom = h - 12;
      g.strokeStyle = grid;
      g.lineWidth = 1;
      g.beginPath();
      g.moveTo(0, bottom + 0.5);
      g.lineTo(w, bottom + 0.5);
      g.stroke();
      g.fillStyle = muted;
      g.font = '10px system-ui, sans-serif';
      g.fillText('max ' + c[3](hi), 2, 10);
      g.fillText(spanText, 2, h - 1);
      var nowText = 'now';
      g.fillText(nowText, w - g.measureText(nowText).width - 2, h - 1);
      var x = function (t) { return w - ((end - t) / span) * w; };
      var y = function (v) { return bottom - ((v - base) / (hi - base)) * (bottom - top); };
      g.strokeStyle = line;
      g.lineWidth = 1.5;
      g.beginPath();
      var drawn = 0;
      pts.forEach(function (p) {
        if (end - p[0] > span) return;
        if (drawn === 0) g.moveTo(x(p[0]), y(p[1]));
        else g.lineTo(x(p[0]), y(p[1]));
        drawn++;
      });
      if (drawn === 1) g.arc(x(pts[pts.length - 1][0]), y(pts[pts.length - 1][1]), 1.5, 0, 2 * Math.PI);
      g.stroke();
      var last = pts.length ? pts[pts.length - 1][1] : null;
      var sum = 0;
      pts.forEach(function (p) { sum += p[1]; });
      canvas.setAttribute('data-points', String(drawn));
      canvas.setAttribute('data-last', last === null ? '' : String(last));
      canvas.setAttribute('data-max', String(hi));
      canvas.setAttribute('data-sum', String(sum));
      // A counter's increase over the samples held: what its rate line
      // adds up to, whatever the spacing of the samples.
      var col = series[c[0]];
      canvas.setAttribute('data-increase', col.length ? String(col[col.length - 1] - col[0]) : '0');
      ch.value.textContent = last === null ? '–' : c[3](last);
    });
  }

  // Appends the answer to what the page has, or starts over when it does
  // not follow on (the first answer, a gap, a restarted node).
  function merge(r) {
    if (!series || r.seq !== series.next) {
      series = { next: r.seq, kept: r.kept };
      COLUMNS.forEach(function (c) { series[c] = []; });
    }
    COLUMNS.forEach(function (c) {
      var add = Array.isArray(r[c]) ? r[c] : [];
      series[c] = series[c].concat(add);
      var extra = series[c].length - (r.kept || 900);
      if (extra > 0) series[c].splice(0, extra);
    });
    series.next = r.next;
  }

  function pollSamples() {
    var url = '/$samples.json' + (series && series.next > 0 ? '?after=' + (series.next - 1) : '');
    fetch(url, { cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (r) {
        merge(r);
        draw();
      })
      .catch(function () {
        // the stats poll reports the connection; the charts wait
      })
      .then(function () {
        setTimeout(pollSamples, PERIOD_MS);
      });
  }

  window.addEventListener('resize', draw);

  build();
  poll();
  pollSamples();
})();
