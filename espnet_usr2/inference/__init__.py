"""Recognition from files and arrays, above the task that builds the model (as ESPnet's
``bin/asr_inference.py`` sits above ``ASRTask``): ``USR2Speech2Text``, the data-directory
front end, model directories, decoding splits and the babble-noise sweep. The search
itself is :mod:`espnet_usr2.decode`."""
