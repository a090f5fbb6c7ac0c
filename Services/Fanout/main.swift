import Shared
print("stub")
