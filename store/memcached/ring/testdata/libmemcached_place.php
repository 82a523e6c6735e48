<?php
// Prints, for each key, the server that PHP's memcached extension picks
// with Memcached::OPT_LIBKETAMA_COMPATIBLE, as "host:port", one per line.
// Reads JSON on stdin: {"servers": [[host, port, weight], ...],
// "hash": null or a Memcached::HASH_* value set after the option,
// "keys": [hex-encoded key, ...]}. getServerByKey needs no running server.
$in = json_decode(stream_get_contents(STDIN), true);
$m = new Memcached();
$m->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
if ($in["hash"] !== null && !$m->setOption(Memcached::OPT_HASH, $in["hash"])) {
    fwrite(STDERR, "OPT_HASH: " . $m->getResultMessage() . "\n");
    exit(1);
}
foreach ($in["servers"] as $s) {
    $m->addServer($s[0], $s[1], $s[2]);
}
foreach ($in["keys"] as $k) {
    $s = $m->getServerByKey(hex2bin($k));
    if ($s === false) {
        fwrite(STDERR, "getServerByKey: " . $m->getResultMessage() . "\n");
        exit(1);
    }
    echo $s["host"], ":", $s["port"], "\n";
}
