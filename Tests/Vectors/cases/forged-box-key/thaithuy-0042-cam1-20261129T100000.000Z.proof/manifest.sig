{"key":"7UkoxijRwsbq6QM4kFmVYSlZJzpcY/k2NsFGFKyHN9E=","signature":"ndHu+L6bTpDJ38dy4IvauRQS/e65KTAacqNVJUGl+OtNMKL5JZXlUne/mDF0hJEuesd7HSUQ6LXiGMFUDPj0Bw==","signer":"box","v":1}
