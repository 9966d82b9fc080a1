{"key":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=","signature":"wc2d2eAthxYNnKym+dqdg6QAJQ5F3ZWWyJCimaY7nuV1/4QBIFxZ7MryfoZG/98H7gHV76NZW7+n/d+iZQGsDQ==","signer":"box","v":1}
