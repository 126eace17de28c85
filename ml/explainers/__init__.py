"""Explanation methods, one module each; ``ml.explain`` chooses among them by name.

``common`` (the result type and shared checks), ``views`` (what gradient methods differentiate: the
inputs, or a text model's embeddings), ``units`` (what perturbation methods switch on and off: features,
patches or tokens), ``gradients`` (integrated gradients, SmoothGrad), ``occlusion``, ``shapley``
(Kernel SHAP and Gradient SHAP through the ``shap`` library) and ``surrogate`` (LIME through ``lime``).
"""
