"""Create the trades table of the trading system."""


def up(connection):
    connection.execute(
        "CREATE TABLE IF NOT EXISTS trades ("
        "id INTEGER PRIMARY KEY, order_id TEXT UNIQUE, symbol TEXT, "
        "quantity INTEGER, price REAL, timestamp DATETIME)"
    )


def down(connection):
    connection.execute("DROP TABLE IF EXISTS trades")
