# What keeping dashboard_1m / dashboard_1h costs the SQLite store's writer, with Python's
# sqlite3 (WAL, synchronous = FULL, the store's migrations): EPOCHS transactions of EVENTS events
# each plus the rollup_source upserts they cause (the keys of HOSTS x 8 severities the epoch
# touched), with and without what the store now adds: reading back the stored counts, summing
# the differences per dimension value, and the two dashboard upserts. Two rounds each.
# Usage: python3 bench/sqlite_dashboard_cost.py EVENTS HOSTS EPOCHS
import glob, os, random, sqlite3, sys, tempfile, time
MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'schemas', 'sql', 'sqlite', '*.sql')
SCRATCH = tempfile.mkdtemp()
EVENTS, HOSTS, EPOCHS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def run(dashboards):
    path = os.path.join(SCRATCH, f'store-{dashboards}.db')
    for suffix in ('', '-wal', '-shm'):
        if os.path.exists(path + suffix): os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA synchronous=FULL')
    for f in sorted(glob.glob(MIGRATIONS)):
        db.executescript(open(f).read())
    counts = {}
    spent = 0.0
    base_ms = int(time.time() * 1000) // 60000 * 60000
    seq = 0
    for epoch in range(EPOCHS):
        bucket = base_ms + (epoch // 10) * 60000  # ten epochs (ticks) per minute
        events = []
        touched = set()
        for _ in range(EVENTS):
            seq += 1
            host, sev = random.randrange(HOSTS), random.randrange(8)
            events.append((os.urandom(16), bucket * 1000 + random.randrange(60_000_000), bucket * 1000, 'hec', 'main', f'host-{host:04d}', sev, 'auth', f'message {seq} of some typical length for a log line here', '{}'))
            key = (bucket, 'default', 'hec', f'host-{host:04d}', sev)
            counts[key] = counts.get(key, 0) + 1
            touched.add(key)
        changed = [(k, counts[k]) for k in sorted(touched)]
        started = time.perf_counter()
        db.execute('BEGIN')
        for i in range(0, len(events), 2000):
            chunk = events[i:i + 2000]
            db.execute('INSERT INTO events (id, time_us, received_us, source_kind, source_name, host, severity, category, message, fields) VALUES ' + ','.join(['(?,?,?,?,?,?,?,?,?,?)'] * len(chunk)), [v for row in chunk for v in row])
        if dashboards:
            rows = [v for n, ((b, t, k, h, s), c) in enumerate(changed) for v in (n, b, t, k, h, s)]
            stored = dict(db.execute('WITH input (n, bucket, tenant, kind, host, severity) AS (VALUES ' + ','.join(['(?,?,?,?,?,?)'] * len(changed)) + """)
                SELECT i.n, COALESCE(r.count, 0) FROM input i LEFT JOIN rollup_source r ON r.bucket_start_ms = i.bucket AND r.tenant = i.tenant
                AND r.source_kind = i.kind AND r.host = i.host AND r.severity = i.severity""", rows).fetchall())
            diffs = {}
            for n, ((b, t, k, h, sev), c) in enumerate(changed):
                delta = c - stored.get(n, 0)
                if delta:
                    for d, v in (('source', k), ('host', h), ('severity', str(sev))):
                        diffs[(d, b, t, v)] = diffs.get((d, b, t, v), 0) + delta
            for table, width in (('dashboard_1m', 60000), ('dashboard_1h', 3600000)):
                per = {}
                for (d, b, t, v), delta in diffs.items():
                    per[(d, b - b % width, t, v)] = per.get((d, b - b % width, t, v), 0) + delta
                values = [x for key, delta in per.items() if delta for x in key + (delta,)]
                n = len(values) // 5
                if n:
                    db.execute(f'INSERT INTO {table} (dimension, bucket_start_ms, tenant, value, count) VALUES ' + ','.join(['(?,?,?,?,?)'] * n) + ' ON CONFLICT (dimension, bucket_start_ms, tenant, value) DO UPDATE SET count = count + excluded.count', values)
        rows = [v for (b, t, k, h, s), c in changed for v in (b, t, k, h, s, c)]
        db.execute('INSERT INTO rollup_source (bucket_start_ms, tenant, source_kind, host, severity, count) VALUES ' + ','.join(['(?,?,?,?,?,?)'] * len(changed)) + ' ON CONFLICT (bucket_start_ms, tenant, source_kind, host, severity) DO UPDATE SET count = excluded.count', rows)
        db.execute('COMMIT')
        spent += time.perf_counter() - started
    return spent
for attempt in range(2):
    for dashboards in (False, True):
        spent = run(dashboards)
        print(f'round {attempt + 1} dashboards={dashboards!s:5}: {EPOCHS} epochs of {EVENTS} events: {spent * 1000 / EPOCHS:.2f} ms per epoch, {EPOCHS * EVENTS / spent:,.0f} events/s')
