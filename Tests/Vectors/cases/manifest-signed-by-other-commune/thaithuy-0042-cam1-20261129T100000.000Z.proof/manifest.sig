{"key":"bnoc3Smwt4/ROvTFWY/v9O8qlxZuPKby5Pv8zYBQW/E=","signature":"qwEIP6fNSqFmeDnbIXLCC24koR+DGH8xRvlUtOc+m8yHNidH4/f+onUxw5fa4d35qbTS0J6A7g3LgPzq2s+YDg==","signer":"commune","v":1}
