{"key":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=","signature":"i5W+P4gYH7m/rK9Rr+gdr69r7EPKWblsNBNW58EMAZm5H4KhdGUTkZT6AWIQxawJpbwaEEWxkaAFCuJ9BiqYDQ==","signer":"box","v":1}
