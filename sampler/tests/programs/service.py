"""The service-like load under the sampler: a JSON encode/decode loop, plus KEPT buffers of
KEPT_SIZE bytes held until the end, which os._exit reaches without the interpreter's teardown
(so they are in use at exit). Prints "total=N kept=K kept_size=S"."""
import json
import os
import sys

KEPT = 64
KEPT_SIZE = 1 << 20
kept = [bytearray(KEPT_SIZE) for _ in range(KEPT)]
document = {
    "user": {"id": 12345, "name": "Ada", "roles": ["admin", "ops"], "active": True},
    "items": [{"sku": f"SKU-{i}", "qty": i % 7, "price": i * 1.25, "tags": ["a", "b", "c"]} for i in range(40)],
}
total = 0
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 2000):
    total += len(json.loads(json.dumps(document))["items"])
sys.stdout.write(f"total={total} kept={len(kept)} kept_size={KEPT_SIZE}\n")
sys.stdout.flush()
os._exit(0)
