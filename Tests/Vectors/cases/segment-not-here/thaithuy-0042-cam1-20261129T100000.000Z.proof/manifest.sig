{"key":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=","signature":"s/GXWqQ5n9HYcJpq8sIjz8fAodi/6fh6otKFd4DX9EG3Xvwx9vJAxMii63T5zgUTfYo4Y08XplB5kuG/YlgIAA==","signer":"box","v":1}
