-- Schema written by vcp-migrate after the last change; do not edit.
-- version: 2

CREATE TABLE trades (
  id INTEGER PRIMARY KEY,
  order_id TEXT UNIQUE,
  symbol TEXT,
  quantity INTEGER,
  price REAL,
  timestamp DATETIME,
  pnl REAL
);
