"""LocalStack community plugin for this project's Lambda image function (see ``hooks``)."""
