<?php
// php-memcache (Pecl::Memcache) through tiercache serve: php memcache.php HOST PORT
// The server's route "article" reads the kv table: 1 one, 2 two, 3 three.
function check($ok, $what) {
    if (!$ok) {
        fwrite(STDERR, "FAIL: $what\n");
        exit(1);
    }
}

$m = new Memcache();
// A generous timeout (seconds): the tests share a busy machine.
check($m->addServer($argv[1], (int)$argv[2], false, 1, 20), 'addServer');

check($m->get('article:1') === 'one', 'get of a route key');
check($m->get('article:404') === false, 'get of a row that does not exist');
$got = $m->get(['article:1', 'article:2', 'article:404', 'nothing-here']);
check($got === ['article:1' => 'one', 'article:2' => 'two'], 'multi-get across the route and plain keys: ' . var_export($got, true));

$values = [
    'php-memcache:string' => 'text',
    'php-memcache:int' => 42,
    'php-memcache:float' => 1.5,
    'php-memcache:true' => true,
    'php-memcache:array' => ['a' => [1, 2, 3]],
];
foreach ($values as $k => $v) {
    check($m->set($k, $v), "set $k");
    check($m->get($k) === $v, "get $k: " . var_export($m->get($k), true));
}
$big = str_repeat('compressible ', 1000);
check($m->set('php-memcache:compressed', $big, MEMCACHE_COMPRESSED) && $m->get('php-memcache:compressed') === $big, 'a compressed value');

$many = [];
for ($i = 0; $i < 100; $i++) {
    $many["php-memcache:many:$i"] = "value $i";
    check($m->set("php-memcache:many:$i", "value $i"), "set $i");
}
check($m->get(array_keys($many)) === $many, 'multi-get of 100');

check($m->add('php-memcache:add', 'a') && !$m->add('php-memcache:add', 'b'), 'add');
check($m->replace('php-memcache:add', 'c') && !$m->replace('php-memcache:absent', 'c'), 'replace');
check($m->set('php-memcache:ctr', '10') && $m->increment('php-memcache:ctr', 5) === 15 && $m->decrement('php-memcache:ctr', 20) === 0, 'increment and decrement');
check($m->delete('php-memcache:add') && $m->get('php-memcache:add') === false, 'delete');
check(is_string($m->getVersion()), 'getVersion');
$s = $m->getStats();
check(is_array($s) && $s['cmd_get'] > 0, 'getStats');
echo "ok\n";
