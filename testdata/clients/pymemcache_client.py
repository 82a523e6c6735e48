"""pymemcache through tiercache serve: python3 pymemcache_client.py HOST PORT

The server's route "article" reads the kv table: 1 one, 2 two, 3 three.
Exits non-zero at the first assertion that fails.
"""
import sys

from pymemcache.client.base import Client


class FlagSerde:
    """Stores bytes as they are, with flags the test chooses per key."""

    def __init__(self):
        self.seen = {}

    def serialize(self, key, value):
        return value[1], value[0]

    def deserialize(self, key, value, flags):
        self.seen[key] = flags
        return value


def main(host, port):
    serde = FlagSerde()
    c = Client((host, port), serde=serde, default_noreply=False, timeout=20, connect_timeout=20)

    assert c.get("article:1") == b"one"
    assert c.get_many(["article:1", "article:3", "article:404", "py:none"]) == {
        "article:1": b"one", "article:3": b"three"}

    for flags in (0, 1, 0x50 | 4, 0xFFFF0000, 0xFFFFFFFF):
        key = "py:flags:%d" % flags
        assert c.set(key, (flags, b"v"))
        assert c.get(key) == b"v" and serde.seen[key] == flags, (key, serde.seen)

    # set_many writes every set before reading a reply: a pipeline.
    many = {"py:many:%d" % i: (0, b"value %d" % i) for i in range(500)}
    assert c.set_many(many) == []
    got = c.get_many(list(many))
    assert got == {k: v[1] for k, v in many.items()}

    # noreply: nothing comes back, and the next reply is still in step.
    c.set("py:noreply", (0, b"quiet"), noreply=True)
    c.delete("py:absent", noreply=True)
    c.incr("py:absent", 1, noreply=True)
    assert c.set_many({"py:nr:%d" % i: (0, b"x") for i in range(100)}, noreply=True) == []
    assert c.get("py:noreply") == b"quiet"
    assert c.get_many(["py:nr:0", "py:nr:99"]) == {"py:nr:0": b"x", "py:nr:99": b"x"}

    c.delete("py:add")
    assert c.add("py:add", (0, b"a")) is True and c.add("py:add", (0, b"b")) is False
    assert c.replace("py:add", (0, b"c")) is True and c.replace("py:absent", (0, b"c")) is False
    assert c.append("py:add", (0, b"d")) and c.prepend("py:add", (0, b"b")) and c.get("py:add") == b"bcd"
    value, cas = c.gets("py:add")
    assert value == b"bcd"
    assert c.cas("py:add", (0, b"e"), cas) is True
    assert c.cas("py:add", (0, b"f"), cas) is False
    assert c.cas("py:absent", (0, b"f"), cas) is None
    assert c.touch("py:add", 100) is True and c.touch("py:absent", 100) is False
    assert c.delete("py:add") is True and c.delete("py:add") is False

    assert c.set("py:ctr", (0, b"10"))
    assert c.incr("py:ctr", 5) == 15 and c.decr("py:ctr", 20) == 0
    assert c.incr("py:absent", 1) is None

    assert c.version().startswith(b"1.")
    stats = c.stats()
    assert stats[b"cmd_get"] > 0 and b"article:loader_statements" in stats
    c.quit()
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
