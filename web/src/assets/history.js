// A file's past versions within -hist (docs/web.md#history): polls
// /$history.json every few seconds; "older versions…" follows `next`.
// Bodies reach the page only as text (doozer.renderBody).
(function () {
  'use strict';

  var D = window.doozer;
  var PERIOD_MS = 2000;

  var path = D.query('path') || '';
  var rowsEl = document.getElementById('rows');
  var summaryEl = document.getElementById('summary');
  var messageEl = document.getElementById('message');
  var olderEl = document.getElementById('older');
  var whatEl = document.getElementById('what');
  document.getElementById('path').value = path;

  var first = null; // the newest answer
  var older = []; // entries fetched with "older versions…"
  var olderNext = null; // where the next "older" fetch starts

  function parent(p) {
    var i = p.lastIndexOf('/');
    return i <= 0 ? '/' : p.slice(0, i + 1);
  }

  function row(e) {
    var tr = D.el('tr', e.kind === 'del' ? 'del' : null);
    tr.setAttribute('data-rev', String(e.rev));
    tr.setAttribute('data-kind', String(e.kind));
    tr.appendChild(D.el('td', 'num rev', e.rev));
    tr.appendChild(D.el('td', 'kind', e.kind === 'del' ? 'deleted' : (e.before_window ? 'set (before the window)' : 'set')));
    tr.appendChild(D.el('td', 'num len', e.kind === 'del' ? '–' : e.len));
    var body = D.el('td', 'body');
    if (e.kind === 'del') body.appendChild(D.el('span', 'meta', '(deleted)'));
    else D.renderBody(body, e);
    tr.appendChild(body);
    var then = D.el('td', 'then');
    if (first && e.rev >= first.oldest) {
      var a = D.el('a', null, 'tree at ' + e.rev);
      a.href = D.treeHref(parent(path), e.rev);
      then.appendChild(a);
    } else {
      then.textContent = '–';
    }
    tr.appendChild(then);
    return tr;
  }

  function render() {
    rowsEl.textContent = '';
    var all = first.entries.concat(older);
    all.forEach(function (e) {
      rowsEl.appendChild(row(e));
    });
    var sets = all.filter(function (e) { return e.kind === 'set'; }).length;
    summaryEl.textContent = all.length
      ? sets + (sets === 1 ? ' version' : ' versions') + ' of ' + path + ' (newest first), within the history window: revs ' +
        first.oldest + ' to ' + first.head + '.'
      : '';
    messageEl.hidden = all.length > 0;
    messageEl.textContent = all.length ? '' : 'No version of ' + path + ' within the history window (revs ' +
      first.oldest + ' to ' + first.head + ').';
    var next = older.length ? olderNext : first.next;
    olderEl.hidden = next === null || next === undefined;
  }

  function load() {
    return D.getJSON('/$history.json?path=' + encodeURIComponent(path)).then(function (h) {
      first = h;
      render();
      D.setStatus('connected', 'connected (rev ' + h.head + ')', h.head);
    }, function (err) {
      if (err.status) {
        // The node answered: the path or rev is refused; say why.
        rowsEl.textContent = '';
        summaryEl.textContent = '';
        messageEl.hidden = false;
        messageEl.textContent = err.message;
        D.setStatus('connected', 'connected');
      }
      throw err;
    });
  }

  olderEl.addEventListener('click', function () {
    var from = older.length ? olderNext : first && first.next;
    if (from === null || from === undefined) return;
    D.getJSON('/$history.json?path=' + encodeURIComponent(path) + '&rev=' + from).then(function (h) {
      older = older.concat(h.entries);
      olderNext = h.next;
      render();
    }, function (err) {
      messageEl.hidden = false;
      messageEl.textContent = err.message;
    });
  });

  if (!path) {
    D.setStatus('connected', 'no file named');
    messageEl.hidden = false;
    messageEl.textContent = 'Name a file to see its history.';
    return;
  }
  whatEl.textContent = path;
  document.title = 'history of ' + path + ' · doozer';
  D.every(PERIOD_MS, load);
})();
