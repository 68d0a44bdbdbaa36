"""Import this module to register every family's Keras classes.

After `import aigc_keras.models`, `keras.models.load_model("saved_models/gan/model.keras")`
needs no `custom_objects`. (The package itself stays light: it does not import TensorFlow.)
"""

from . import families

for _name in families.NAMES:  # a family's implementation imports (and so registers) its Keras classes
    families.get_family(_name)
