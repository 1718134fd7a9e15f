from mis_data.cli import app

app(prog_name="mis-data")
