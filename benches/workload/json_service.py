"""A service-like load: encode and decode a nested JSON document in a loop, as a
request handler would (allocation-heavy, few syscalls, few page faults once
warm). Usage: python3 json_service.py [ITERATIONS=20000]"""
import json
import sys

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
document = {
    "user": {"id": 12345, "name": "Ada", "roles": ["admin", "ops"], "active": True},
    "items": [{"sku": f"SKU-{i}", "qty": i % 7, "price": i * 1.25, "tags": ["a", "b", "c"]} for i in range(40)],
    "meta": {"trace": "0af7651916cd43dd8448eb211c80319c", "ttl": 30.5},
}
total = 0
for _ in range(iterations):
    total += len(json.loads(json.dumps(document))["items"])
sys.exit(0 if total == 40 * iterations else 1)
