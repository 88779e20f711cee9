"""argon2id through argon2-cffi (the C reference implementation, libargon2) at the same
parameters as the Rust code; prints median hash and verify times in ms as JSON."""
import json, statistics, sys, time
from argon2 import low_level

M, T, P, N = 19456, 2, 1, int(sys.argv[1]) if len(sys.argv) > 1 else 15
pw, salt = b"securepassword123", b"0123456789abcdef"

def once(f):
    t = time.perf_counter(); f(); return (time.perf_counter() - t) * 1e3

h = low_level.hash_secret(pw, salt, time_cost=T, memory_cost=M, parallelism=P, hash_len=32, type=low_level.Type.ID)
hash_ms = statistics.median(once(lambda: low_level.hash_secret(pw, salt, time_cost=T, memory_cost=M, parallelism=P, hash_len=32, type=low_level.Type.ID)) for _ in range(N))
verify_ms = statistics.median(once(lambda: low_level.verify_secret(h, pw, low_level.Type.ID)) for _ in range(N))
import argon2
print(json.dumps({"hash_ms": hash_ms, "verify_ms": verify_ms, "impl": "argon2-cffi " + argon2.__version__}))
