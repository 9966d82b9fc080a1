{"key":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=","signature":"XhNeV50CNuR36dDVePwY1hEB5aTBjvxb+3JrqPGnMRK4lXzJsUBiQAmdCsaykp2b97s/Yg9dGSCC6UfQrmg9BA==","signer":"box","v":1}
