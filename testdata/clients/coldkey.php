<?php
// One of many processes asking for one cold key at once:
// php coldkey.php memcached|memcache HOST PORT KEY
// It connects, says "ready", waits for a line on standard input, then
// gets KEY and prints the value.
// Generous timeouts: the tests share a busy machine.
if ($argv[1] === 'memcached') {
    $m = new Memcached();
    $m->addServer($argv[2], (int)$argv[3]);
    $m->setOption(Memcached::OPT_POLL_TIMEOUT, 20000);
    $m->setOption(Memcached::OPT_RECV_TIMEOUT, 20000000);
    $m->getVersion();
} else {
    $m = new Memcache();
    $m->connect($argv[2], (int)$argv[3], 20);
}
echo "ready\n";
fgets(STDIN);
echo var_export($m->get($argv[4]), true), "\n";
