"""The gap filler: REST repair of books the connector has not brought back; stored-sequence audit."""
