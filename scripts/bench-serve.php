<?php
// bench-serve.php EXT ROUNDS N NAME=HOST:PORT... — get-hit latency of one
// PHP extension (memcached or memcache) against each target, interleaved:
// each round runs N gets of one key, then N getMulti of 100 keys, on every
// target in turn. Prints p50 and p99 in microseconds per target, over all
// rounds. Run by bench-serve.sh.
[$ext, $rounds, $n] = [$argv[1], (int)$argv[2], (int)$argv[3]];
$clients = [];
foreach (array_slice($argv, 4) as $arg) {
    [$name, $addr] = explode('=', $arg, 2);
    [$host, $port] = explode(':', $addr);
    if ($ext === 'memcached') {
        $c = new Memcached();
        $c->addServer($host, (int)$port);
        $c->setOption(Memcached::OPT_COMPRESSION, false);
    } else {
        $c = new Memcache();
        $c->addServer($host, (int)$port);
    }
    $clients[$name] = $c;
}
$value = str_repeat('v', 100);
$keys = [];
for ($i = 0; $i < 100; $i++) {
    $keys[] = sprintf('bench:php:%06d', $i);
}
$first = reset($clients);
foreach ($keys as $k) {
    $first->set($k, $value); // the same memcached behind every target
}
$single = $multi = array_fill_keys(array_keys($clients), []);
for ($r = 0; $r < $rounds; $r++) {
    foreach ($clients as $name => $c) {
        for ($i = 0; $i < $n; $i++) {
            $t = hrtime(true);
            $v = $c->get($keys[$i % 100]);
            $single[$name][] = (hrtime(true) - $t) / 1000;
            if ($v !== $value) {
                fwrite(STDERR, "$name: get missed\n");
                exit(1);
            }
        }
        for ($i = 0; $i < $n / 10; $i++) {
            $t = hrtime(true);
            $m = $ext === 'memcached' ? $c->getMulti($keys) : $c->get($keys);
            $multi[$name][] = (hrtime(true) - $t) / 1000;
            if (count($m) !== 100) {
                fwrite(STDERR, "$name: getMulti got " . count($m) . " of 100\n");
                exit(1);
            }
        }
    }
}
function pct(array $xs, float $p): float {
    sort($xs);
    return $xs[(int)floor($p * (count($xs) - 1))];
}
foreach ($clients as $name => $c) {
    printf("php-%s %-10s get p50 %6.0f µs p99 %6.0f µs   getMulti(100) p50 %6.0f µs p99 %6.0f µs\n", $ext, $name,
        pct($single[$name], 0.5), pct($single[$name], 0.99), pct($multi[$name], 0.5), pct($multi[$name], 0.99));
}
