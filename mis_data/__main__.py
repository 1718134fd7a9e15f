"""``python -m mis_data``: the same command line as the ``mis-data`` script."""

from mis_data.cli import app

app(prog_name="mis-data")
