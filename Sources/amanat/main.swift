print("amanat")
