"""The experiment configs shipped with lipjax: one ``get_config(arg="")`` per module.

``lipjax train --config NAME[:ARG]`` loads ``lipjax/configs/NAME.py`` from the
installed package, so it works from any directory; ``experiments/configs`` in a
checkout is a link to this folder. A user's own file is given by path
(``--config path/to/my_config.py``).
"""
