"""The only code that writes to the database. Each service raises app.errors.RenkeiError on bad input."""
