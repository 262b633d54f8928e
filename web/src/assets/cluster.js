// The cluster page (docs/web.md#cluster-page): the same data as `doozer
// status`, from this node's view. It follows the event stream of the /ctl
// directory (live, reconnecting, resuming like the tree page) and judges
// health by the pulses it sees: each CAL rewrites its `applied` file every
// -pulse seconds, so a CAL whose pulse the page has not seen for
// SILENT_PULSES pulse intervals is silent. The /ctl layout, -pulse,
// -timeout and this node's id come from /$stats.json. Everything from the
// store reaches the page only as text.
(function () {
  'use strict';

  var D = window.doozer;
  var SILENT_PULSES = 5; // pulse intervals without a pulse: silent
  var MAX_LAG = 1000; // revs a CAL may trail at its pulse (doozer status -lag)
  var RENDER_MS = 500; // the ages tick
  var LIVENESS_MS = 40000; // reopen the stream after this long without a word
  var RETRY_MIN_MS = 1000;
  var RETRY_MAX_MS = 30000;

  var rowsEl = document.getElementById('rows');
  var verdictEl = document.getElementById('verdict');
  var problemsEl = document.getElementById('problems');
  var factsEl = document.getElementById('facts');
  var nameEl = document.getElementById('name');
  var noteEl = document.getElementById('note');

  var layout = null; // /$stats.json's "ctl"
  var self = null; // this node's id
  var pulseS = 1;
  var timeoutS = 60;

  var files = new Map(); // path -> {rev, text}
  var listing = null; // files of a listing in progress (reset .. ready)
  var lastPulse = new Map(); // node id -> Date.now() when its pulse was seen
  var watchingSince = null; // Date.now() at the first ready
  var rev = null; // the last rev applied
  var state = 'connecting';
  var es = null;
  var livenessTimer = null;
  var retryTimer = null;
  var retryDelay = RETRY_MIN_MS;

  // --- /ctl paths, from the layout the node serves -----------------------

  // {kind: 'name'} | {kind: 'slot', slot} | {kind: 'node', id, file} | null
  function parse(path) {
    if (path === layout.name) return { kind: 'name' };
    var cal = layout.cal_dir + '/';
    if (path.slice(0, cal.length) === cal) {
      var slot = path.slice(cal.length);
      return slot && slot.indexOf('/') < 0 ? { kind: 'slot', slot: slot } : null;
    }
    var node = layout.node_dir + '/';
    if (path.slice(0, node.length) === node) {
      var parts = path.slice(node.length).split('/');
      return parts.length === 2 && parts[0] ? { kind: 'node', id: parts[0], file: parts[1] } : null;
    }
    return null;
  }

  function text(f) {
    if (f.enc === 'base64') return '<binary, ' + f.len + ' bytes>';
    return String(f.body === undefined || f.body === null ? '' : f.body);
  }

  function isApplied(path) {
    var p = parse(path);
    return p && p.kind === 'node' && p.file === layout.node_files.applied ? p.id : null;
  }

  // --- the model: what `doozer status` shows ------------------------------

  function slotOrder(a, b) {
    var x = /^\d+$/.test(a), y = /^\d+$/.test(b);
    if (x && y) return Number(a) - Number(b);
    if (x !== y) return x ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function model(now) {
    var name = null;
    var slots = [];
    var nodes = new Map();
    function node(id) {
      if (!nodes.has(id)) nodes.set(id, { id: id, files: {}, fileRevs: {}, slot: null });
      return nodes.get(id);
    }
    files.forEach(function (f, path) {
      var p = parse(path);
      if (!p) return;
      if (p.kind === 'name') name = f.text;
      else if (p.kind === 'slot') slots.push({ slot: p.slot, id: f.text });
      else {
        var n = node(p.id);
        n.files[p.file] = f.text;
        n.fileRevs[p.file] = f.rev;
      }
    });
    slots.sort(function (a, b) { return slotOrder(a.slot, b.slot); });
    var cals = [];
    slots.forEach(function (s) {
      if (!s.id) return;
      var n = node(s.id);
      if (n.slot === null) {
        n.slot = s.slot;
        cals.push(n);
      }
    });
    var slaves = [];
    nodes.forEach(function (n) {
      if (n.slot === null) slaves.push(n);
    });
    slaves.sort(function (a, b) { return a.id < b.id ? -1 : 1; });
    var silentAfter = Math.max(SILENT_PULSES * pulseS, 2);
    var watched = watchingSince === null ? 0 : (now - watchingSince) / 1000;
    var problems = [];
    var alive = 0;
    var waiting = 0;
    cals.forEach(function (n) {
      var appliedName = layout.node_files.applied;
      n.applied = /^\s*\d+\s*$/.test(n.files[appliedName] || '') ? Number(n.files[appliedName]) : null;
      n.appliedRev = n.fileRevs[appliedName];
      n.lag = n.applied !== null && rev !== null ? Math.max(0, rev - n.applied) : null;
      var seen = lastPulse.get(n.id);
      n.pulseAge = seen === undefined ? null : (now - seen) / 1000;
      var who = 'CAL ' + n.id + ' (slot ' + n.slot + ', ' + (n.files.addr || 'no address') + ')';
      if (n.pulseAge === null ? watched > silentAfter : n.pulseAge > silentAfter) {
        n.health = 'silent';
        n.words = 'silent';
        problems.push(who + ' is silent: no pulse seen for ' +
          Math.floor(n.pulseAge === null ? watched : n.pulseAge) + ' s (it pulses every ' + pulseS + ' s; kicked after ' + timeoutS + ' s)');
        return;
      }
      alive++;
      if (n.pulseAge === null) {
        n.health = 'waiting';
        n.words = 'no pulse seen yet';
        waiting++;
      } else if (n.applied !== null && n.appliedRev - n.applied > MAX_LAG) {
        n.health = 'behind';
        n.words = 'behind';
        problems.push(who + ' was ' + (n.appliedRev - n.applied) + ' revs behind at its last pulse (more than ' + MAX_LAG + ')');
      } else if (n.files[layout.node_files.writable] !== 'true') {
        n.health = 'behind';
        n.words = 'not writable yet';
      } else {
        n.health = 'ok';
        n.words = 'pulsing';
      }
    });
    slaves.forEach(function (n) {
      n.health = 'slave';
      n.words = ''; // slaves do not pulse: nothing to judge
      n.pulseAge = null;
      n.applied = null;
      n.lag = null;
    });
    var majority = alive * 2 > cals.length;
    if (!majority) {
      problems.unshift('NO majority of CALs alive: ' + alive + ' of ' + cals.length);
    }
    var free = slots.filter(function (s) { return !s.id; }).map(function (s) { return s.slot; });
    if (free.length > slaves.length) {
      problems.push(slaves.length === 0
        ? 'CAL slot' + (free.length > 1 ? 's ' : ' ') + free.join(', ') + (free.length > 1 ? ' are' : ' is') + ' free and no slave is there to take ' + (free.length > 1 ? 'them' : 'it')
        : 'CAL slots ' + free.join(', ') + ' are free and only ' + slaves.length + ' slave' + (slaves.length > 1 ? 's' : '') + ' to take them');
    }
    return {
      name: name, slots: slots, cals: cals, slaves: slaves, free: free, alive: alive,
      majority: majority, problems: problems, waiting: waiting, silentAfter: silentAfter,
    };
  }

  // --- rendering ----------------------------------------------------------

  function ago(s) {
    if (s === null) return '–';
    return s < 10 ? s.toFixed(1) + ' s ago' : Math.floor(s) + ' s ago';
  }

  function orDash(v) {
    return v === undefined || v === null || v === '' ? '–' : String(v);
  }

  function fact(label, value, key) {
    var c = D.el('div', 'card');
    c.appendChild(D.el('span', 'k', label));
    var v = D.el('span', 'v', value);
    v.setAttribute('data-field', key);
    c.appendChild(v);
    factsEl.appendChild(c);
  }

  var HEALTH_WORDS = { ok: 'ok', waiting: 'waiting', behind: 'warning', silent: 'UNHEALTHY', slave: 'slave' };

  function render() {
    if (!layout || watchingSince === null) return;
    var m = model(Date.now());
    nameEl.textContent = m.name === null ? '' : m.name;
    document.title = (m.name === null ? '' : m.name + ' · ') + 'cluster · doozer';

    rowsEl.textContent = '';
    m.cals.concat(m.slaves).forEach(function (n) {
      var tr = D.el('tr', 'health-' + n.health + (n.id === self ? ' this-node' : ''));
      tr.setAttribute('data-node', n.id);
      tr.setAttribute('data-health', n.health);
      var h = D.el('td', 'health');
      h.appendChild(D.el('span', 'dot', '●'));
      h.appendChild(document.createTextNode(' ' + HEALTH_WORDS[n.health] + (n.words ? ': ' + n.words : '')));
      tr.appendChild(h);
      var idCell = D.el('td', 'id');
      D.appendVisible(idCell, n.id, false);
      if (n.id === self) idCell.appendChild(D.el('span', 'meta', ' (this node)'));
      tr.appendChild(idCell);
      tr.appendChild(D.el('td', 'role', n.slot === null ? 'slave' : 'CAL slot ' + n.slot));
      tr.appendChild(D.el('td', 'addr', orDash(n.files.addr)));
      tr.appendChild(D.el('td', 'host', orDash(n.files.hostname)));
      tr.appendChild(D.el('td', 'writable', orDash(n.files.writable)));
      tr.appendChild(D.el('td', 'version', orDash(n.files.version)));
      tr.appendChild(D.el('td', 'num applied', orDash(n.applied)));
      tr.appendChild(D.el('td', 'num lag', orDash(n.lag)));
      tr.appendChild(D.el('td', 'num pulse', n.slot === null ? '–' : ago(n.pulseAge)));
      rowsEl.appendChild(tr);
    });
    if (!m.cals.length && !m.slaves.length) {
      rowsEl.appendChild(D.el('tr')).appendChild(D.el('td', 'none', 'no nodes listed'));
    }

    factsEl.textContent = '';
    fact('cluster', orDash(m.name), 'cluster');
    fact('head rev', orDash(rev), 'rev');
    fact('CALs alive', m.alive + ' of ' + m.cals.length + (m.majority ? ' (a majority)' : ' (NO majority)'), 'majority');
    fact('free CAL slots', m.free.length ? m.free.join(', ') : 'none', 'free');
    fact('slaves', String(m.slaves.length), 'slaves');
    fact('pulse', pulseS + ' s', 'pulse');
    fact('kick after', timeoutS + ' s silent', 'timeout');

    problemsEl.textContent = '';
    m.problems.forEach(function (p) {
      problemsEl.appendChild(D.el('li', null, p));
    });
    var health;
    if (state !== 'connected') {
      // Pulses cannot be seen while the stream is down: no verdict.
      health = 'unknown';
      verdictEl.textContent = 'unknown: not connected to the node (the table is as last seen)';
    } else if (m.problems.length) {
      health = 'unhealthy';
      verdictEl.textContent = 'UNHEALTHY: ' + m.problems.length + (m.problems.length === 1 ? ' problem' : ' problems');
    } else if (m.waiting) {
      health = 'checking';
      verdictEl.textContent = 'checking: waiting for the pulses of ' + m.waiting + (m.waiting === 1 ? ' CAL' : ' CALs');
    } else {
      health = 'healthy';
      verdictEl.textContent = 'healthy';
    }
    verdictEl.setAttribute('data-health', health);
    noteEl.textContent = 'As this node sees the cluster. A CAL is silent when this page has seen no pulse from it for ' +
      m.silentAfter + ' s (' + SILENT_PULSES + ' pulse intervals); the cluster kicks it after ' + timeoutS + ' s.';
  }

  // --- the stream (as on the tree page) -----------------------------------

  function setState(s, extra) {
    state = s;
    var words = s === 'connected' ? 'connected (rev ' + rev + ')' : s === 'reconnecting' ? 'reconnecting…' :
      s === 'disconnected' ? 'disconnected' + (extra || '') : 'connecting…';
    D.setStatus(s, words, rev);
  }

  function setRev(n) {
    if (typeof n !== 'number' || !isFinite(n)) return;
    rev = n;
    if (state === 'connected') setState('connected');
  }

  function data(e) {
    try {
      return JSON.parse(e.data);
    } catch (err) {
      return null;
    }
  }

  function eventRev(e, fallback) {
    var n = e.lastEventId === '' ? NaN : Number(e.lastEventId);
    return isFinite(n) ? n : fallback;
  }

  var handlers = {
    reset: function () {
      listing = new Map();
    },
    file: function (e) {
      var f = data(e);
      if (!f || !listing) return;
      listing.set(f.path, { rev: f.rev, text: text(f) });
    },
    ready: function (e) {
      var d = data(e) || {};
      var now = Date.now();
      if (listing) {
        // A listing after a gap: an applied file at another rev than
        // before pulsed meanwhile (the first listing tells nothing).
        if (watchingSince !== null) {
          listing.forEach(function (f, path) {
            var id = isApplied(path);
            var old = files.get(path);
            if (id && old && old.rev !== f.rev) lastPulse.set(id, now);
          });
        }
        files = listing;
        listing = null;
      }
      if (watchingSince === null) watchingSince = now;
      setRev(eventRev(e, d.rev));
      retryDelay = RETRY_MIN_MS;
      setState('connected');
      render();
    },
    change: function (e) {
      var c = data(e);
      if (!c) return;
      if (c.kind === 'del') files.delete(c.path);
      else {
        files.set(c.path, { rev: c.rev, text: text(c) });
        var id = isApplied(c.path);
        if (id) lastPulse.set(id, Date.now());
      }
      setRev(eventRev(e, c.rev));
      render();
    },
    rev: function (e) {
      var d = data(e) || {};
      setRev(eventRev(e, d.rev));
    },
    ping: function () {},
  };

  function alive() {
    clearTimeout(livenessTimer);
    livenessTimer = setTimeout(function () {
      connect(); // silence: the connection may be dead without an error
    }, LIVENESS_MS);
  }

  function connect() {
    clearTimeout(retryTimer);
    if (es) es.close();
    var url = '/$events' + layout.dir + '/' + (rev !== null ? '?rev=' + rev : '');
    var src = new EventSource(url);
    es = src;
    src.onopen = function () {
      if (src === es) alive();
    };
    src.onerror = function () {
      if (src !== es) return;
      if (src.readyState === EventSource.CLOSED) retryLater();
      else {
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
        connect();
        setState('reconnecting');
        return;
      }
      setState('disconnected', ' (retrying in ' + left + ' s)');
      retryTimer = setTimeout(tick, 1000);
    })();
  }

  window.addEventListener('online', function () {
    if (state === 'disconnected') connect();
  });

  // The layout and settings first (and again now and then: a restarted
  // node may have other flags); then the stream.
  D.every(10000, function () {
    return D.getJSON('/$stats.json').then(function (s) {
      var first = layout === null;
      layout = s.ctl;
      self = s.node_id;
      if (typeof s.pulse_s === 'number' && s.pulse_s > 0) pulseS = s.pulse_s;
      if (typeof s.timeout_s === 'number' && s.timeout_s > 0) timeoutS = s.timeout_s;
      if (first) connect();
    });
  });
  setInterval(render, RENDER_MS);
})();
