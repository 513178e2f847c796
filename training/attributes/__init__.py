"""How the shipped attribute models were made. Run from the repository root; the model card of each model
(facelab/models/cards/) lists its commands in order.

    extract_faces.py     labelled images -> main face, 64x64 aligned crop, box, age/gender outputs (one npz per set)
    train_age_gender.py  age calibration (age_calibration.npz) and the gender figures       card: age_calibration.md
    pack_fer.py          FER2013 folders -> one npz;  train_expression.py: the expression CNN card: expression_cnn.md
    onnx_fp16.py         store an ONNX model's weights as float16 (the expression CNN)
    pack_crops.py        aligned crops + folds -> one npz; train_crops.py: CropNet           card: eyewear_cnn.md
    pack_mask.py         face-box crops + folds -> one npz; train_mask.py: the mask CNN       card: mask_cnn.md
    folds.py             the group-disjoint folds the packers share

The train_*.py scripts that need a GPU (train_crops, train_expression, train_mask) import only torch, NumPy and
OpenCV, so they can be copied to a training machine and run as files.
"""
