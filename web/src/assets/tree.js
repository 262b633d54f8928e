// A directory as it was at a chosen rev, within -hist (docs/web.md#tree-at-a-rev).
// The rev field and the slider pick the rev; the slider's range follows the
// node's history window (polled from /$stats.json); the listing comes from
// /$tree.json. Names and bodies reach the page only as text.
(function () {
  'use strict';

  var D = window.doozer;
  var PERIOD_MS = 2000;
  var PICK_DELAY_MS = 150; // a dragged slider asks once it rests

  var dirEl = document.getElementById('dir');
  var revEl = document.getElementById('rev');
  var sliderEl = document.getElementById('slider');
  var rangeEl = document.getElementById('range');
  var treeEl = document.getElementById('tree');
  var summaryEl = document.getElementById('summary');
  var messageEl = document.getElementById('message');
  var whatEl = document.getElementById('what');

  var dir = normalDir(D.query('dir') || '/');
  var wanted = D.query('rev'); // the rev asked for; null: the head, once known
  wanted = wanted === null || wanted === '' ? null : Number(wanted);
  var shown = null; // the answer shown
  var head = null;
  var oldest = null;
  var pickTimer = null;
  var seq = 0; // answers to older requests are dropped

  function normalDir(d) {
    d = String(d);
    if (d.charAt(0) !== '/') d = '/' + d;
    if (d.charAt(d.length - 1) !== '/') d += '/';
    return d;
  }

  function showMessage(text) {
    messageEl.hidden = !text;
    messageEl.textContent = text || '';
  }

  function fileRow(f) {
    var row = D.el('div', 'row file');
    row.setAttribute('data-path', f.path);
    var name = D.el('a', 'name');
    D.appendVisible(name, f.path.slice(dir.length), false);
    name.href = D.historyHref(f.path);
    name.title = 'the history of ' + f.path;
    row.appendChild(name);
    row.appendChild(D.el('span', 'rev', f.rev));
    row.appendChild(D.el('span', 'len', f.len));
    var body = D.el('span', 'body');
    D.renderBody(body, f);
    row.appendChild(body);
    return row;
  }

  function render(t) {
    shown = t;
    treeEl.textContent = '';
    t.files.forEach(function (f) {
      treeEl.appendChild(fileRow(f));
    });
    var n = t.files.length;
    summaryEl.textContent = dir + ' at rev ' + t.rev + ': ' + n + (n === 1 ? ' file' : ' files') +
      (t.truncated ? ' (cut: the listing is bounded, see docs)' : '') + '.';
    showMessage(n ? '' : 'No files under ' + dir + ' at rev ' + t.rev + '.');
    setStatus();
  }

  function setStatus() {
    if (head === null) return;
    var rev = shown ? shown.rev : wanted;
    D.setStatus('connected', 'rev ' + (rev === null ? '–' : rev) + ' (head ' + head + ')', rev);
  }

  function setWindow(o, h) {
    oldest = o;
    head = h;
    sliderEl.min = String(o);
    sliderEl.max = String(h);
    revEl.min = String(o);
    revEl.max = String(h);
    rangeEl.textContent = 'history: revs ' + o + ' to ' + h;
    if (wanted !== null && document.activeElement !== sliderEl) sliderEl.value = String(wanted);
    setStatus();
  }

  function fetchTree() {
    var mine = ++seq;
    var url = '/$tree.json?dir=' + encodeURIComponent(dir) + (wanted === null ? '' : '&rev=' + wanted);
    return D.getJSON(url).then(function (t) {
      if (mine !== seq) return;
      if (wanted === null) wanted = t.rev;
      setWindow(t.oldest, t.head);
      revEl.value = String(t.rev);
      sliderEl.value = String(t.rev);
      render(t);
    }, function (err) {
      if (mine !== seq) return;
      if (err.status) {
        shown = null;
        treeEl.textContent = '';
        summaryEl.textContent = '';
        showMessage(err.message);
        setStatus();
      }
      throw err;
    });
  }

  // Picks rev (a number) and shows the tree then, keeping the URL in step
  // so the page can be reloaded or shared.
  function pick(rev, now) {
    if (typeof rev !== 'number' || !isFinite(rev)) return;
    rev = Math.round(rev);
    if (oldest !== null) rev = Math.max(oldest, Math.min(head, rev));
    wanted = rev;
    revEl.value = String(rev);
    sliderEl.value = String(rev);
    try {
      history.replaceState(null, '', D.treeHref(dir, rev));
    } catch (e) {
      // a page opened from a file: the URL stays
    }
    clearTimeout(pickTimer);
    pickTimer = setTimeout(function () {
      fetchTree().catch(function () {});
    }, now ? 0 : PICK_DELAY_MS);
  }

  revEl.addEventListener('change', function () {
    pick(Number(revEl.value), true);
  });
  sliderEl.addEventListener('input', function () {
    revEl.value = sliderEl.value;
    pick(Number(sliderEl.value), false);
  });
  document.getElementById('prev').addEventListener('click', function () {
    if (wanted !== null) pick(wanted - 1, true);
  });
  document.getElementById('next').addEventListener('click', function () {
    if (wanted !== null) pick(wanted + 1, true);
  });
  document.getElementById('head').addEventListener('click', function () {
    if (head !== null) pick(head, true);
  });
  document.getElementById('pick').addEventListener('submit', function (ev) {
    ev.preventDefault();
    dir = normalDir(dirEl.value || '/');
    dirEl.value = dir;
    whatEl.textContent = dir;
    pick(wanted === null ? head : wanted, true);
  });

  dirEl.value = dir;
  whatEl.textContent = dir;
  document.getElementById('live').href = dir.split('/').map(encodeURIComponent).join('/');
  document.title = dir + ' at a rev · doozer';

  // The first listing, then the window every few seconds (the head moves,
  // old revs fall out of -hist); a rev that fell out says so.
  var loaded = false;
  D.every(PERIOD_MS, function () {
    if (!loaded) {
      return fetchTree().then(function () {
        loaded = true;
      }, function (err) {
        if (err.status) loaded = true;
        throw err;
      });
    }
    return D.getJSON('/$stats.json').then(function (s) {
      setWindow(s.history_oldest, s.rev);
      if (shown && shown.rev < s.history_oldest) {
        showMessage('Rev ' + shown.rev + ' has left the history window (oldest kept rev ' + s.history_oldest + '); pick a later one.');
      }
    });
  });
})();
