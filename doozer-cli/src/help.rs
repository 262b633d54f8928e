//! Usage and per-command help texts.

/// The version line printed by `doozer -v`.
pub fn version() -> String {
    format!("doozer {}", env!("CARGO_PKG_VERSION"))
}

/// The general usage text (`doozer -h`, `doozer help`).
pub const USAGE: &str = "\
Usage: doozer [global options] COMMAND [options] [args]

Global options (single or double dash):
  -a URI       cluster to talk to (default $DOOZER_URI, or doozer:?ca=127.0.0.1:8046)
  -b URI       name service URI (default $DOOZER_BOOT_URI)
  -r REV       revision to read at / wait from
  -t DURATION  give up waiting after DURATION (e.g. 500ms, 10s, 1m30s);
               for status, how long each node has to answer (default 1s)
  -h           print this help
  -v           print the version

Commands:
  add PATH        create a file from stdin, only if it does not exist
  set PATH REV    write stdin to a file if REV >= its revision
  get PATH        print a file's body
  del PATH REV    delete a file if REV >= its revision
  rev             print the current revision
  stat PATH       print a file's revision and length, or a directory's size
  find PATH       list PATH and everything under it
  wait GLOB       print the next change to a file matching GLOB
  watch GLOB      print every change to files matching GLOB
  touch PATH      rewrite a file with its own body (creates it if absent)
  nop             run one consensus round
  self            print the node's id
  backup FILE     write a consistent copy of the whole tree to FILE (- for stdout)
  status [-json]  the cluster's health: every node, its role, lag and pulse; exit 2 if unhealthy
  bench [opts]    load-test a node and report throughput and latency
  help COMMAND    detailed help for COMMAND

URIs: doozer:?ca=HOST:PORT&ca=...&cn=NAME&sk=SECRET&tlsca=PATH
  ca=     a node's address (repeatable; default port 8046)
  sk=     secret sent with ACCESS after connecting
  tlsca=  PEM file of CA certificates: talk TLS, and check each node's
          certificate against them for the host of its ca= address
  cn=     cluster name: the addresses of its CALs are looked up under
          /ctl/ns/NAME/ in the name service of -b (or $DOOZER_BOOT_URI)

Exit status: 0 ok, 1 rev mismatch, 2 other error, 127 usage error.
";

/// Detailed help for each command.
const COMMANDS: &[(&str, &str)] = &[
    (
        "add",
        "\
Usage: doozer add PATH

Creates the file PATH with the contents of stdin, only if it does not exist
(a SET with rev 0). Prints the new revision. If the file exists: rev
mismatch, exit status 1.
",
    ),
    (
        "set",
        "\
Usage: doozer set PATH REV

Writes stdin to the file PATH if REV is at least the file's revision
(0: only if absent; -1: unconditionally). Prints the new revision. A newer
file: 'Error: rev mismatch', exit status 1.
",
    ),
    (
        "get",
        "\
Usage: doozer [-r REV] get PATH

Prints the body of the file PATH exactly, with no newline added. A missing
file prints nothing. With -r, reads the file as it was at revision REV.
",
    ),
    (
        "del",
        "\
Usage: doozer del PATH REV

Deletes the file PATH if REV is at least its revision (-1: unconditionally).
Prints nothing. A newer file: 'Error: rev mismatch', exit status 1.
",
    ),
    (
        "rev",
        "\
Usage: doozer rev

Prints the node's current revision.
",
    ),
    (
        "stat",
        "\
Usage: doozer [-r REV] stat PATH

For a file, prints '<rev> <len>'; for a directory, 'd <entries>'. A missing
path: 'No such file or directory: PATH' on stderr, exit status 2.
",
    ),
    (
        "find",
        "\
Usage: doozer [-r REV] find PATH

Prints PATH, then every directory and file under it, depth first, children
in sorted order, one path per line. Everything is read at one revision: -r,
or the current revision.
",
    ),
    (
        "wait",
        "\
Usage: doozer [-r REV] [-t DURATION] wait GLOB

Waits for the first change at or after REV (default: the current revision
+ 1, i.e. the next change) to a file matching GLOB, and prints it as a
record:
  <path> <rev> <set|del> <len>
  <body>
A NOP shows as '/ <rev>  0' and an empty body. GLOB: '?' one character,
'*' any run within a name, '**' any run across names. With -t, gives up
after DURATION ('Error: timeout', exit status 2).
",
    ),
    (
        "watch",
        "\
Usage: doozer [-r REV] [-t DURATION] watch GLOB

Prints every change to files matching GLOB as records (see 'help wait'),
from REV on (default: the next change), forever. With -t, gives up when no
change arrives for DURATION.
",
    ),
    (
        "touch",
        "\
Usage: doozer touch PATH

Rewrites the file PATH with its own body, at its own revision, so watchers
see a change. Creates an empty file if it does not exist. Prints nothing.
",
    ),
    (
        "nop",
        "\
Usage: doozer nop

Runs one consensus round that changes nothing (it uses up one revision).
Prints nothing.
",
    ),
    (
        "self",
        "\
Usage: doozer self

Prints the id of the node connected to.
",
    ),
    (
        "backup",
        "\
Usage: doozer backup FILE|-

Writes a consistent copy of the whole tree at one revision (every file
with its body and revision, and the revision itself) to FILE, as a
versioned, checksummed backup image, while writes go on. Any node serves
it, CAL or slave. The image is written to FILE.tmp, synced, and renamed
to FILE, so a failed backup never leaves a partial image under FILE's
name. With FILE '-', the image is written to stdout. Prints to stderr a
one-line summary: the revision, files and bytes.

Restore it into a new cluster with 'doozerd -restore FILE'.
",
    ),
    (
        "status",
        "\
Usage: doozer [-t DURATION] status [-json] [-lag N] [-pulse DURATION]

Prints the cluster's health, as seen from the node of -a: the cluster
name; the head rev; every node with its id, address, host, role (CAL slot
N, or slave), writable, version, rev and lag behind the head, seconds
since its last pulse, and whether it answered and how fast; the free CAL
slots; whether a majority of the CALs answered; with -b (or
$DOOZER_BOOT_URI), the cluster's entries in that name service.

The CAL slots and the nodes are read from /ctl at one rev. Then every node
is asked for its rev directly at its address (with the TLS and secret of
-a), all at once, each within -t (default 1s). The head is the highest
rev seen; a node's lag is the head minus its rev. Meanwhile the node read
from is watched for each CAL's next pulse (its /ctl/node/ID/applied file,
rewritten every doozerd -pulse), until every CAL pulsed or -pulse passed:
a CAL not seen pulsing shows '> 2.0 s'.

Options:
  -json            print the same as one JSON object (fields: see docs/reference.md)
  -lag N           a CAL more than N revs behind the head is unhealthy (default 1000)
  -pulse DURATION  how long to wait for every CAL's next pulse (default 2s;
                   give more than the nodes' -pulse)

Exit status 0 when healthy. 2 when not, with one line on stderr for each
reason ('unhealthy: ...'): no majority of the CALs answers; a CAL did not
answer; a CAL lags more than -lag revs; a CAL answers but did not pulse
while others did; no CAL pulsed at all; a free CAL slot that no answering
slave can take. The table (or JSON) is printed either way. Other errors
(the cluster cannot be reached or read) are 'Error: ...', exit status 2.
",
    ),
    (
        "help",
        "\
Usage: doozer help [COMMAND]

Prints detailed help for COMMAND, or the general usage.
",
    ),
    (
        "bench",
        "\
Usage: doozer [-a URI] bench [options]

Load-tests the nodes of -a and prints ops, seconds, ops/s and latency
percentiles (microseconds, send to response). Uses raw pipelined
connections: C requests in flight over K connections. When -a names
several nodes (doozer:?ca=A&ca=B&ca=C), connection i goes to node i mod N
(with -k 8 over three nodes: 3, 3 and 2 connections) and the report adds
each node's share; watchers are spread the same way, while the watch and
sse writer uses the first node. Writes (-op set, the prefill, the watch
and sse writer) go to the CALs: a node of -a that is a slave (it refuses
writes) is replaced for them by its cluster's CALs, as the client library
finds them for a write a slave refused. So -a naming slaves loads the
slaves with reads and the CALs with writes.

Options:
  -op get|set|watch|sse  what to do (default set)
  -c N         requests in flight in total (default 64)
  -k N         connections (default 8)
  -n N         total operations (default: run for -d)
  -d DURATION  run length (default 10s)
  -size N      value bytes (default 100)
  -keys N      distinct files (default 1000)
  -layout flat|nested
               flat: /bench/flat/kN (one big directory);
               nested: /bench/n/<N/100>/kN (small directories)
  -prefill     create every key first (always done for -op get)
  -cpu WEB[,WEB...]
               the nodes' web addresses (doozerd -w): reports the CPU
               time the nodes spent per operation, summed over them, from
               their /$metrics process_cpu_seconds_total before and after
               the run (get and set modes)
Watch mode (-op watch):
  -watchers N  connections each following /bench/watch/** (default 100)
  -rate N      writes per second by one writer (default 50)
  -grace DURATION
               how long to wait for late notifications (default 2s)
  Reports ack->notified and send->notified latency, and events missed or
  duplicated by any watcher.
SSE mode (-op sse): the same measure for the web viewer's event streams.
  -streams N   event streams, each a plain HTTP connection following
               /$events/bench/sse/ on the web address (default 1000)
  -web HOST:PORT
               the node's web address (doozerd -w; default: host of the
               first ca= of -a, port 8000)
  -rate, -grace as in watch mode; the writer SETs /bench/sse/kN over the
  client protocol and starts once every stream has its listing (event:
  ready). Reports ack->delivered and send->delivered latency, deliveries,
  and changes missed or duplicated by any stream; failed streams are
  counted. Each stream is one file descriptor: for thousands of streams
  raise the limit first (e.g. ulimit -n 4096).

In watch and sse modes the exit status is 2 (after the report) when any
change was missed or duplicated, or any watcher or stream failed. In get
and set modes it is 2 (after the report, which then adds a line stray
responses: N) when a node answered a tag not in flight on that
connection; such answers are not counted as operations.

Examples:
  doozer bench -op set -c 64 -k 8 -d 10s
  doozer bench -op get -keys 100000 -layout flat -n 1000000
  doozer bench -op set -d 10s -cpu 127.0.0.1:8000
  doozer bench -op watch -watchers 100 -rate 50 -d 10s
  doozer bench -op sse -streams 1000 -rate 50 -d 10s -web 127.0.0.1:8000
",
    ),
];

/// Detailed help for `command`, or `None` if there is no such command.
pub fn command_help(command: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .find(|(name, _)| *name == command)
        .map(|(_, text)| *text)
}
