<?php
// php-memcached (libmemcached) through tiercache serve: php memcached.php HOST PORT
// The server's route "article" reads the kv table: 1 one, 2 two, 3 three.
// Exits 1 at the first check that fails, after saying which.
function check($ok, $what) {
    if (!$ok) {
        fwrite(STDERR, "FAIL: $what\n");
        exit(1);
    }
}

$m = new Memcached();
$m->addServer($argv[1], (int)$argv[2]);
// Generous timeouts (milliseconds): the tests share a busy machine.
$m->setOption(Memcached::OPT_CONNECT_TIMEOUT, 20000);
$m->setOption(Memcached::OPT_POLL_TIMEOUT, 20000);
$m->setOption(Memcached::OPT_RECV_TIMEOUT, 20000000);
$m->setOption(Memcached::OPT_SEND_TIMEOUT, 20000000);

// The by-hand fallback code, reduced to the client's own calls.
check($m->get('article:1') === 'one', 'get of a route key');
check($m->get('article:404') === false && $m->getResultCode() === Memcached::RES_NOTFOUND, 'get of a row that does not exist');
$got = $m->getMulti(['article:1', 'article:2', 'article:404', 'nothing-here']);
check($got === ['article:1' => 'one', 'article:2' => 'two'], 'getMulti across the route and plain keys: ' . var_export($got, true));

// Values the extension serializes, and their flags, on plain keys.
$values = [
    'php-memcached:string' => 'text',
    'php-memcached:int' => 42,
    'php-memcached:negative' => -7,
    'php-memcached:float' => 1.5,
    'php-memcached:true' => true,
    'php-memcached:false' => false,
    'php-memcached:array' => ['a' => [1, 2, 3], 'b' => null],
    'php-memcached:compressed' => str_repeat('compressible ', 1000),
];
foreach ($values as $k => $v) {
    check($m->set($k, $v), "set $k");
    check($m->get($k) === $v, "get $k: " . var_export($m->get($k), true));
}
$obj = new stdClass();
$obj->id = 42;
check($m->set('php-memcached:object', $obj) && $m->get('php-memcached:object') == $obj, 'an object round-trips');

// User flags live in the upper 16 bits.
$m->setOption(Memcached::OPT_USER_FLAGS, 0xBEEF);
check($m->set('php-memcached:userflags', 'x'), 'set with user flags');
$m->setOption(Memcached::OPT_USER_FLAGS, 0);
$ext = $m->get('php-memcached:userflags', null, Memcached::GET_EXTENDED);
check($ext['value'] === 'x' && $ext['flags'] === 0xBEEF, 'user flags come back: ' . var_export($ext, true));

// setMulti and getMulti of 100 plain keys.
$many = [];
for ($i = 0; $i < 100; $i++) {
    $many["php-memcached:many:$i"] = "value $i";
}
check($m->setMulti($many), 'setMulti of 100');
check($m->getMulti(array_keys($many)) === $many, 'getMulti of 100');

// The other commands.
check($m->add('php-memcached:add', 'a') && !$m->add('php-memcached:add', 'b'), 'add');
check($m->replace('php-memcached:add', 'c') && !$m->replace('php-memcached:absent', 'c'), 'replace');
check($m->set('php-memcached:ctr', 10) && $m->increment('php-memcached:ctr', 5) === 15 && $m->decrement('php-memcached:ctr', 20) === 0, 'increment and decrement');
check($m->increment('php-memcached:absent') === false, 'increment of an absent key');
$ext = $m->get('php-memcached:add', null, Memcached::GET_EXTENDED);
check($m->cas($ext['cas'], 'php-memcached:add', 'd') && !$m->cas($ext['cas'], 'php-memcached:add', 'e') && $m->get('php-memcached:add') === 'd', 'cas');
check($m->touch('php-memcached:add', 100), 'touch');
check($m->delete('php-memcached:add') && $m->get('php-memcached:add') === false && !$m->delete('php-memcached:add'), 'delete');
$m->setOption(Memcached::OPT_COMPRESSION, false);
check($m->set('php-memcached:app', 'b') && $m->append('php-memcached:app', 'c') && $m->prepend('php-memcached:app', 'a') && $m->get('php-memcached:app') === 'abc', 'append and prepend');
$m->setOption(Memcached::OPT_COMPRESSION, true);

// A route key takes strings (after an UPDATE), not values with flags.
check($m->set('article:2', 'two'), 'set of a route key');
check(!$m->set('article:2', 2), 'set of a route key with flags is refused');
check($m->get('article:2') === 'two', 'the refused set changed nothing');

$v = $m->getVersion();
check(is_array($v) && count($v) === 1, 'getVersion');
$s = $m->getStats();
check(is_array($s) && reset($s)['cmd_get'] > 0, 'getStats');
echo "ok\n";
