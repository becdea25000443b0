"""The live group: faces from a camera, a video or the browser, classified as they come.

One job per module:

================  ==================================================================
module            job
================  ==================================================================
``detect``        face detectors behind one interface (Haar cascade, YuNet), tracking
                  between full-frame searches, and the crop to a FER2013-framed 48x48 face
``classify``      ``FaceClassifier``: 48x48 faces -> probabilities (ONNX Runtime, checked
                  against PyTorch, else PyTorch); the ONNX export
``pipeline``      ``Pipeline``: one frame -> faces, labels, probabilities smoothed per
                  tracked face (``FaceSmoother``); ``PipelineConfig``, ``FrameResult``
``sources``       cameras, video files and images as frame sources; the annotated-video
                  writer; sample clips of a public-domain face (a camera stand-in)
``draw``          boxes and labels drawn on frames; montages
``runner``        ``run`` over a source (video, CSV, window), notebook 05's ``run_headless``,
                  the command line ``python -m fer_utils.realtime``
``webcam``        ``WebcamWidget``: the browser's camera, this pipeline in the kernel
                  (anywidget; browser side in ``static/``)
``lab_server``    Jupyter Server settings for the widget's speed (``jupyter_config/``, ``make lab``)
================  ==================================================================

Importing this package imports nothing heavy; cv2, torch, onnxruntime and
anywidget come with the modules that need them.
"""
