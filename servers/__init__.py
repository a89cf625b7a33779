"""Thin adapters that run beside the web app: SMTP, FTP, scheduler, import worker, mail sender."""
