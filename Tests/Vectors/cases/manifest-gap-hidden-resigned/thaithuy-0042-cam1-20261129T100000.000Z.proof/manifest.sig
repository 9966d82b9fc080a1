{"key":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=","signature":"xkZQqeygfprPgf1gujFcx9/l0w6EtsGzmL69UUigqK+Yr6bxGDNXRtofuzs3HYNfzNUctGRIXROS46HgPsRrCw==","signer":"box","v":1}
