-- Runs once when the TimescaleDB volume is created: the extension, and a read-only role for
-- Grafana. SecureWatch creates its own tables, hypertable and continuous aggregates at start.
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE ROLE grafana LOGIN PASSWORD 'grafana';
GRANT pg_read_all_data TO grafana;
