"""Add the realised profit and loss of each trade."""


def up(connection):
    connection.execute("ALTER TABLE trades ADD COLUMN pnl REAL")


def down(connection):
    connection.execute("ALTER TABLE trades DROP COLUMN pnl")
