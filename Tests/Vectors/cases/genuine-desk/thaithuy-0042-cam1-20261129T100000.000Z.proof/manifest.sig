{"key":"gTl3Dqh9F19Wo1Rmw0x+zMuNipG07jeiXfYPW4/Js5Q=","signature":"4qaiOeJLr6HHNTfJEr2c3gP75nF4L0Zn6RLRBQWWbQ9rfbDmqgmWRRWhBnJ9VhvwFcjLhIQlyMBdf+vpwjrIDw==","signer":"commune","v":1}
