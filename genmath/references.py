"""Every paper genmath cites, keyed: ``genmath cite KEY`` prints its BibTeX entry.

Derivations, docstrings and docs pages refer to these keys; a test checks that every key a
derivation names is here.
"""

from __future__ import annotations

__all__ = ["REFERENCES", "bibtex", "format_reference", "keys"]

# key -> (entry type, fields). Fields follow BibTeX names.
REFERENCES: dict[str, tuple[str, dict[str, str]]] = {
    "kingma2014auto": ("inproceedings", {
        "author": "Kingma, Diederik P. and Welling, Max",
        "title": "Auto-Encoding Variational {Bayes}",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2014",
    }),
    "rezende2014stochastic": ("inproceedings", {
        "author": "Rezende, Danilo Jimenez and Mohamed, Shakir and Wierstra, Daan",
        "title": "Stochastic Backpropagation and Approximate Inference in Deep Generative Models",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2014",
    }),
    "burda2016importance": ("inproceedings", {
        "author": "Burda, Yuri and Grosse, Roger and Salakhutdinov, Ruslan",
        "title": "Importance Weighted Autoencoders",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2016",
    }),
    "blei2017variational": ("article", {
        "author": "Blei, David M. and Kucukelbir, Alp and McAuliffe, Jon D.",
        "title": "Variational Inference: A Review for Statisticians",
        "journal": "Journal of the American Statistical Association",
        "volume": "112", "number": "518", "pages": "859--877",
        "year": "2017",
    }),
    "williams1992simple": ("article", {
        "author": "Williams, Ronald J.",
        "title": "Simple Statistical Gradient-Following Algorithms for Connectionist Reinforcement Learning",
        "journal": "Machine Learning", "volume": "8", "pages": "229--256",
        "year": "1992",
    }),
    "theis2016note": ("inproceedings", {
        "author": "Theis, Lucas and van den Oord, A{\\\"a}ron and Bethge, Matthias",
        "title": "A Note on the Evaluation of Generative Models",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "eprint": "1511.01844", "archiveprefix": "arXiv",
        "year": "2016",
    }),
    "tipping1999probabilistic": ("article", {
        "author": "Tipping, Michael E. and Bishop, Christopher M.",
        "title": "Probabilistic Principal Component Analysis",
        "journal": "Journal of the Royal Statistical Society: Series B",
        "volume": "61", "number": "3", "pages": "611--622",
        "year": "1999",
    }),
    "bishop2006pattern": ("book", {
        "author": "Bishop, Christopher M.",
        "title": "Pattern Recognition and Machine Learning",
        "publisher": "Springer", "isbn": "978-0-387-31073-2",
        "year": "2006",
    }),
    "cover2006elements": ("book", {
        "author": "Cover, Thomas M. and Thomas, Joy A.",
        "title": "Elements of Information Theory",
        "edition": "2", "publisher": "Wiley",
        "year": "2006",
    }),
    "rudin1976principles": ("book", {
        "author": "Rudin, Walter",
        "title": "Principles of Mathematical Analysis",
        "edition": "3", "publisher": "McGraw-Hill",
        "year": "1976",
    }),
    "billingsley1995probability": ("book", {
        "author": "Billingsley, Patrick",
        "title": "Probability and Measure",
        "edition": "3", "publisher": "Wiley",
        "year": "1995",
    }),
    "cramer1936eigenschaft": ("article", {
        "author": "Cram{\\'e}r, Harald",
        "title": "{\\\"U}ber eine {E}igenschaft der normalen {V}erteilungsfunktion",
        "journal": "Mathematische Zeitschrift",
        "volume": "41", "pages": "405--414",
        "year": "1936",
        "doi": "10.1007/BF01180430",
    }),
    "villani2009optimal": ("book", {
        "author": "Villani, C{\\'e}dric",
        "title": "Optimal Transport: Old and New",
        "publisher": "Springer",
        "year": "2009",
        "doi": "10.1007/978-3-540-71050-9",
    }),
    "dinh2017density": ("inproceedings", {
        "author": "Dinh, Laurent and Sohl-Dickstein, Jascha and Bengio, Samy",
        "title": "Density Estimation Using {Real NVP}",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2017",
    }),
    "kingma2018glow": ("inproceedings", {
        "author": "Kingma, Diederik P. and Dhariwal, Prafulla",
        "title": "Glow: Generative Flow with Invertible 1x1 Convolutions",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2018",
    }),
    "papamakarios2017masked": ("inproceedings", {
        "author": "Papamakarios, George and Pavlakou, Theo and Murray, Iain",
        "title": "Masked Autoregressive Flow for Density Estimation",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2017",
    }),
    "papamakarios2021normalizing": ("article", {
        "author": "Papamakarios, George and Nalisnick, Eric and Rezende, Danilo Jimenez and Mohamed, Shakir and Lakshminarayanan, Balaji",
        "title": "Normalizing Flows for Probabilistic Modeling and Inference",
        "journal": "Journal of Machine Learning Research", "volume": "22", "number": "57",
        "pages": "1--64",
        "year": "2021",
    }),
    "kingma2016improved": ("inproceedings", {
        "author": "Kingma, Diederik P. and Salimans, Tim and Jozefowicz, Rafal and Chen, Xi and Sutskever, Ilya and Welling, Max",
        "title": "Improved Variational Inference with Inverse Autoregressive Flow",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2016",
    }),
    "rezende2015variational": ("inproceedings", {
        "author": "Rezende, Danilo Jimenez and Mohamed, Shakir",
        "title": "Variational Inference with Normalizing Flows",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2015",
    }),
    "germain2015made": ("inproceedings", {
        "author": "Germain, Mathieu and Gregor, Karol and Murray, Iain and Larochelle, Hugo",
        "title": "{MADE}: Masked Autoencoder for Distribution Estimation",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2015",
    }),
    "chen2018neural": ("inproceedings", {
        "author": "Chen, Ricky T. Q. and Rubanova, Yulia and Bettencourt, Jesse and Duvenaud, David",
        "title": "Neural Ordinary Differential Equations",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2018",
    }),
    "grathwohl2019ffjord": ("inproceedings", {
        "author": "Grathwohl, Will and Chen, Ricky T. Q. and Bettencourt, Jesse and Sutskever, Ilya and Duvenaud, David",
        "title": "{FFJORD}: Free-Form Continuous Dynamics for Scalable Reversible Generative Models",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2019",
    }),
    "hutchinson1989stochastic": ("article", {
        "author": "Hutchinson, Michael F.",
        "title": "A Stochastic Estimator of the Trace of the Influence Matrix for {Laplacian} Smoothing Splines",
        "journal": "Communications in Statistics - Simulation and Computation",
        "volume": "18", "number": "3", "pages": "1059--1076",
        "year": "1989",
    }),
    "efron2011tweedie": ("article", {
        "author": "Efron, Bradley",
        "title": "Tweedie's Formula and Selection Bias",
        "journal": "Journal of the American Statistical Association",
        "volume": "106", "number": "496", "pages": "1602--1614",
        "year": "2011",
    }),
    "hyvarinen2005estimation": ("article", {
        "author": "Hyv{\\\"a}rinen, Aapo",
        "title": "Estimation of Non-Normalized Statistical Models by Score Matching",
        "journal": "Journal of Machine Learning Research", "volume": "6", "pages": "695--709",
        "year": "2005",
    }),
    "vincent2011connection": ("article", {
        "author": "Vincent, Pascal",
        "title": "A Connection Between Score Matching and Denoising Autoencoders",
        "journal": "Neural Computation", "volume": "23", "number": "7", "pages": "1661--1674",
        "year": "2011",
    }),
    "song2020sliced": ("inproceedings", {
        "author": "Song, Yang and Garg, Sahaj and Shi, Jiaxin and Ermon, Stefano",
        "title": "Sliced Score Matching: A Scalable Approach to Density and Score Estimation",
        "booktitle": "Conference on Uncertainty in Artificial Intelligence (UAI)",
        "year": "2020",
    }),
    "song2019generative": ("inproceedings", {
        "author": "Song, Yang and Ermon, Stefano",
        "title": "Generative Modeling by Estimating Gradients of the Data Distribution",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2019",
    }),
    "sohl2015deep": ("inproceedings", {
        "author": "Sohl-Dickstein, Jascha and Weiss, Eric and Maheswaranathan, Niru and Ganguli, Surya",
        "title": "Deep Unsupervised Learning using Nonequilibrium Thermodynamics",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2015",
    }),
    "ho2020denoising": ("inproceedings", {
        "author": "Ho, Jonathan and Jain, Ajay and Abbeel, Pieter",
        "title": "Denoising Diffusion Probabilistic Models",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2020",
    }),
    "nichol2021improved": ("inproceedings", {
        "author": "Nichol, Alexander Quinn and Dhariwal, Prafulla",
        "title": "Improved Denoising Diffusion Probabilistic Models",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2021",
    }),
    "song2021denoising": ("inproceedings", {
        "author": "Song, Jiaming and Meng, Chenlin and Ermon, Stefano",
        "title": "Denoising Diffusion Implicit Models",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2021",
    }),
    "song2021score": ("inproceedings", {
        "author": "Song, Yang and Sohl-Dickstein, Jascha and Kingma, Diederik P. and Kumar, Abhishek and Ermon, Stefano and Poole, Ben",
        "title": "Score-Based Generative Modeling through Stochastic Differential Equations",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2021",
    }),
    "anderson1982reverse": ("article", {
        "author": "Anderson, Brian D. O.",
        "title": "Reverse-Time Diffusion Equation Models",
        "journal": "Stochastic Processes and their Applications",
        "volume": "12", "number": "3", "pages": "313--326",
        "year": "1982",
    }),
    "kingma2021variational": ("inproceedings", {
        "author": "Kingma, Diederik P. and Salimans, Tim and Poole, Ben and Ho, Jonathan",
        "title": "Variational Diffusion Models",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2021",
    }),
    "kingma2023understanding": ("inproceedings", {
        "author": "Kingma, Diederik P. and Gao, Ruiqi",
        "title": "Understanding Diffusion Objectives as the {ELBO} with Simple Data Augmentation",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2023",
    }),
    "salimans2022progressive": ("inproceedings", {
        "author": "Salimans, Tim and Ho, Jonathan",
        "title": "Progressive Distillation for Fast Sampling of Diffusion Models",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2022",
    }),
    "karras2022elucidating": ("inproceedings", {
        "author": "Karras, Tero and Aittala, Miika and Aila, Timo and Laine, Samuli",
        "title": "Elucidating the Design Space of Diffusion-Based Generative Models",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2022",
    }),
    "lu2022dpm": ("inproceedings", {
        "author": "Lu, Cheng and Zhou, Yuhao and Bao, Fan and Chen, Jianfei and Li, Chongxuan and Zhu, Jun",
        "title": "{DPM-Solver}: A Fast {ODE} Solver for Diffusion Probabilistic Model Sampling in Around 10 Steps",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2022",
    }),
    "lu2022dpmpp": ("article", {
        "author": "Lu, Cheng and Zhou, Yuhao and Bao, Fan and Chen, Jianfei and Li, Chongxuan and Zhu, Jun",
        "title": "{DPM-Solver++}: Fast Solver for Guided Sampling of Diffusion Probabilistic Models",
        "journal": "arXiv preprint arXiv:2211.01095",
        "year": "2022",
    }),
    "ho2022classifier": ("inproceedings", {
        "author": "Ho, Jonathan and Salimans, Tim",
        "title": "Classifier-Free Diffusion Guidance",
        "booktitle": "NeurIPS Workshop on Deep Generative Models and Downstream Applications",
        "year": "2021",
    }),
    "lipman2023flow": ("inproceedings", {
        "author": "Lipman, Yaron and Chen, Ricky T. Q. and Ben-Hamu, Heli and Nickel, Maximilian and Le, Matt",
        "title": "Flow Matching for Generative Modeling",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2023",
    }),
    "lipman2024flow": ("article", {
        "author": "Lipman, Yaron and Havasi, Marton and Holderrieth, Peter and Shaul, Neta and Le, Matt and Karrer, Brian and Chen, Ricky T. Q. and Lopez-Paz, David and Ben-Hamu, Heli and Gat, Itai",
        "title": "Flow Matching Guide and Code",
        "journal": "arXiv preprint arXiv:2412.06264",
        "year": "2024",
    }),
    "liu2023flow": ("inproceedings", {
        "author": "Liu, Xingchao and Gong, Chengyue and Liu, Qiang",
        "title": "Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2023",
    }),
    "albergo2023stochastic": ("article", {
        "author": "Albergo, Michael S. and Boffi, Nicholas M. and Vanden-Eijnden, Eric",
        "title": "Stochastic Interpolants: A Unifying Framework for Flows and Diffusions",
        "journal": "arXiv preprint arXiv:2303.08797",
        "year": "2023",
    }),
    "tong2024improving": ("article", {
        "author": "Tong, Alexander and Fatras, Kilian and Malkin, Nikolay and Huguet, Guillaume and Zhang, Yanlei and Rector-Brooks, Jarrid and Wolf, Guy and Bengio, Yoshua",
        "title": "Improving and Generalizing Flow-Based Generative Models with Minibatch Optimal Transport",
        "journal": "Transactions on Machine Learning Research",
        "year": "2024",
    }),
    "song2023consistency": ("inproceedings", {
        "author": "Song, Yang and Dhariwal, Prafulla and Chen, Mark and Sutskever, Ilya",
        "title": "Consistency Models",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2023",
    }),
    "boffi2025flow": ("article", {
        "author": "Boffi, Nicholas M. and Albergo, Michael S. and Vanden-Eijnden, Eric",
        "title": "Flow Map Matching with Stochastic Interpolants: A Mathematical Framework for Consistency Models",
        "journal": "Transactions on Machine Learning Research",
        "year": "2025",
        "eprint": "2406.07507",
        "archiveprefix": "arXiv",
    }),
    "geng2025meanflow": ("article", {
        "author": "Geng, Zhengyang and Deng, Mingyang and Bai, Xingjian and Kolter, J. Zico and He, Kaiming",
        "title": "Mean Flows for One-step Generative Modeling",
        "journal": "arXiv preprint arXiv:2505.13447",
        "year": "2025",
    }),
    "li2025back": ("article", {
        "author": "Li, Tianhong and He, Kaiming",
        "title": "Back to Basics: Let Denoising Generative Models Denoise",
        "journal": "arXiv preprint arXiv:2511.13720",
        "year": "2025",
    }),
    "li2024autoregressive": ("inproceedings", {
        "author": "Li, Tianhong and Tian, Yonglong and Li, He and Deng, Mingyang and He, Kaiming",
        "title": "Autoregressive Image Generation without Vector Quantization",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2024",
    }),
    "goodfellow2014generative": ("inproceedings", {
        "author": "Goodfellow, Ian and Pouget-Abadie, Jean and Mirza, Mehdi and Xu, Bing and Warde-Farley, David and Ozair, Sherjil and Courville, Aaron and Bengio, Yoshua",
        "title": "Generative Adversarial Nets",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2014",
    }),
    "nowozin2016fgan": ("inproceedings", {
        "author": "Nowozin, Sebastian and Cseke, Botond and Tomioka, Ryota",
        "title": "f-{GAN}: Training Generative Neural Samplers using Variational Divergence Minimization",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2016",
    }),
    "oord2017neural": ("inproceedings", {
        "author": "van den Oord, Aaron and Vinyals, Oriol and Kavukcuoglu, Koray",
        "title": "Neural Discrete Representation Learning",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2017",
    }),
    "austin2021structured": ("inproceedings", {
        "author": "Austin, Jacob and Johnson, Daniel D. and Ho, Jonathan and Tarlow, Daniel and van den Berg, Rianne",
        "title": "Structured Denoising Diffusion Models in Discrete State-Spaces",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2021",
    }),
    "sahoo2024simple": ("inproceedings", {
        "author": "Sahoo, Subham Sekhar and Arriola, Marianne and Schiff, Yair and Gokaslan, Aaron and Marroquin, Edgar and Chiu, Justin T. and Rush, Alexander and Kuleshov, Volodymyr",
        "title": "Simple and Effective Masked Diffusion Language Models",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2024",
    }),
    "gat2024discrete": ("inproceedings", {
        "author": "Gat, Itai and Remez, Tal and Shaul, Neta and Kreuk, Felix and Chen, Ricky T. Q. and Synnaeve, Gabriel and Adi, Yossi and Lipman, Yaron",
        "title": "Discrete Flow Matching",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2024",
    }),
    "risken1996fokker": ("book", {
        "author": "Risken, Hannes",
        "title": "The {Fokker-Planck} Equation: Methods of Solution and Applications",
        "edition": "2", "publisher": "Springer",
        "year": "1996",
    }),
    "sarkka2019applied": ("book", {
        "author": "S{\\\"a}rkk{\\\"a}, Simo and Solin, Arno",
        "title": "Applied Stochastic Differential Equations",
        "publisher": "Cambridge University Press",
        "year": "2019",
    }),
    "higgins2017beta": ("inproceedings", {
        "author": "Higgins, Irina and Matthey, Loic and Pal, Arka and Burgess, Christopher and Glorot, Xavier and Botvinick, Matthew and Mohamed, Shakir and Lerchner, Alexander",
        "title": "beta-{VAE}: Learning Basic Visual Concepts with a Constrained Variational Framework",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2017",
    }),
    "lucas2019dont": ("inproceedings", {
        "author": "Lucas, James and Tucker, George and Grosse, Roger and Norouzi, Mohammad",
        "title": "Don't Blame the {ELBO}! A Linear {VAE} Perspective on Posterior Collapse",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2019",
    }),
    "mentzer2024finite": ("inproceedings", {
        "author": "Mentzer, Fabian and Minnen, David and Agustsson, Eirikur and Tschannen, Michael",
        "title": "Finite Scalar Quantization: {VQ-VAE} Made Simple",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2024",
    }),
    "bengio2013estimating": ("article", {
        "author": "Bengio, Yoshua and L{\\'e}onard, Nicholas and Courville, Aaron",
        "title": "Estimating or Propagating Gradients Through Stochastic Neurons for Conditional Computation",
        "journal": "arXiv preprint arXiv:1308.3432",
        "year": "2013",
    }),
    "lloyd1982least": ("article", {
        "author": "Lloyd, Stuart P.",
        "title": "Least Squares Quantization in {PCM}",
        "journal": "IEEE Transactions on Information Theory",
        "volume": "28", "number": "2", "pages": "129--137",
        "year": "1982",
    }),
    "max1960quantizing": ("article", {
        "author": "Max, Joel",
        "title": "Quantizing for Minimum Distortion",
        "journal": "IRE Transactions on Information Theory",
        "volume": "6", "number": "1", "pages": "7--12",
        "year": "1960",
    }),
    "oord2016pixel": ("inproceedings", {
        "author": "van den Oord, A{\\\"a}ron and Kalchbrenner, Nal and Kavukcuoglu, Koray",
        "title": "Pixel Recurrent Neural Networks",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2016",
    }),
    "oord2016conditional": ("inproceedings", {
        "author": "van den Oord, A{\\\"a}ron and Kalchbrenner, Nal and Vinyals, Oriol and Espeholt, Lasse and Graves, Alex and Kavukcuoglu, Koray",
        "title": "Conditional Image Generation with {PixelCNN} Decoders",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2016",
    }),
    "shi2024simplified": ("inproceedings", {
        "author": "Shi, Jiaxin and Han, Kehang and Wang, Zhe and Doucet, Arnaud and Titsias, Michalis K.",
        "title": "Simplified and Generalized Masked Diffusion for Discrete Data",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2024",
    }),
    "lou2024discrete": ("inproceedings", {
        "author": "Lou, Aaron and Meng, Chenlin and Ermon, Stefano",
        "title": "Discrete Diffusion Modeling by Estimating the Ratios of the Data Distribution",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2024",
    }),
    "behrmann2019invertible": ("inproceedings", {
        "author": "Behrmann, Jens and Grathwohl, Will and Chen, Ricky T. Q. and Duvenaud, David and Jacobsen, J{\\\"o}rn-Henrik",
        "title": "Invertible Residual Networks",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2019",
    }),
    "chen2019residual": ("inproceedings", {
        "author": "Chen, Ricky T. Q. and Behrmann, Jens and Duvenaud, David and Jacobsen, J{\\\"o}rn-Henrik",
        "title": "Residual Flows for Invertible Generative Modeling",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2019",
    }),
    "durkan2019neural": ("inproceedings", {
        "author": "Durkan, Conor and Bekasov, Artur and Murray, Iain and Papamakarios, George",
        "title": "Neural Spline Flows",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2019",
    }),
    "mao2017least": ("inproceedings", {
        "author": "Mao, Xudong and Li, Qing and Xie, Haoran and Lau, Raymond Y. K. and Wang, Zhen and Smolley, Stephen Paul",
        "title": "Least Squares Generative Adversarial Networks",
        "booktitle": "IEEE International Conference on Computer Vision (ICCV)",
        "year": "2017",
    }),
    "lim2017geometric": ("article", {
        "author": "Lim, Jae Hyun and Ye, Jong Chul",
        "title": "Geometric {GAN}",
        "journal": "arXiv preprint arXiv:1705.02894",
        "year": "2017",
    }),
    "arjovsky2017towards": ("inproceedings", {
        "author": "Arjovsky, Martin and Bottou, L{\\'e}on",
        "title": "Towards Principled Methods for Training Generative Adversarial Networks",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2017",
    }),
    "arjovsky2017wasserstein": ("inproceedings", {
        "author": "Arjovsky, Martin and Chintala, Soumith and Bottou, L{\\'e}on",
        "title": "Wasserstein Generative Adversarial Networks",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2017",
    }),
    "gulrajani2017improved": ("inproceedings", {
        "author": "Gulrajani, Ishaan and Ahmed, Faruk and Arjovsky, Martin and Dumoulin, Vincent and Courville, Aaron",
        "title": "Improved Training of {Wasserstein} {GANs}",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2017",
    }),
    "mescheder2018which": ("inproceedings", {
        "author": "Mescheder, Lars and Geiger, Andreas and Nowozin, Sebastian",
        "title": "Which Training Methods for {GANs} do actually Converge?",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2018",
    }),
    "huang2024gan": ("inproceedings", {
        "author": "Huang, Yiwen and Gokaslan, Aaron and Kuleshov, Volodymyr and Tompkin, James",
        "title": "The {GAN} is dead; long live the {GAN}! A Modern {GAN} Baseline",
        "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
        "year": "2024",
    }),
    "roberts1996exponential": ("article", {
        "author": "Roberts, Gareth O. and Tweedie, Richard L.",
        "title": "Exponential Convergence of {Langevin} Distributions and Their Discrete Approximations",
        "journal": "Bernoulli",
        "volume": "2",
        "number": "4",
        "pages": "341--363",
        "year": "1996",
    }),
    "hinton2002training": ("article", {
        "author": "Hinton, Geoffrey E.",
        "title": "Training Products of Experts by Minimizing Contrastive Divergence",
        "journal": "Neural Computation",
        "volume": "14",
        "number": "8",
        "pages": "1771--1800",
        "year": "2002",
    }),
    "tieleman2008training": ("inproceedings", {
        "author": "Tieleman, Tijmen",
        "title": "Training Restricted {Boltzmann} Machines using Approximations to the Likelihood Gradient",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2008",
    }),
    "finlay2020how": ("inproceedings", {
        "author": "Finlay, Chris and Jacobsen, J{\\\"o}rn-Henrik and Nurbekyan, Levon and Oberman, Adam M.",
        "title": "How to Train Your Neural {ODE}: the World of {Jacobian} and Kinetic Regularization",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2020",
    }),
    "miyato2018spectral": ("inproceedings", {
        "author": "Miyato, Takeru and Kataoka, Toshiki and Koyama, Masanori and Yoshida, Yuichi",
        "title": "Spectral Normalization for Generative Adversarial Networks",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2018",
    }),
    "gregory1982piecewise": ("article", {
        "author": "Gregory, John A. and Delbourgo, Roland",
        "title": "Piecewise Rational Quadratic Interpolation to Monotonic Data",
        "journal": "IMA Journal of Numerical Analysis",
        "volume": "2", "number": "2", "pages": "123--130",
        "year": "1982",
    }),
    "esser2024scaling": ("inproceedings", {
        "author": "Esser, Patrick and Kulal, Sumith and Blattmann, Andreas and Entezari, Rahim and M{\\\"u}ller, Jonas and Saini, Harry and Levi, Yam and Lorenz, Dominik and Sauer, Axel and Boesel, Frederic and Podell, Dustin and Dockhorn, Tim and English, Zion and Rombach, Robin",
        "title": "Scaling Rectified Flow Transformers for High-Resolution Image Synthesis",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2024",
    }),
    "song2024improved": ("inproceedings", {
        "author": "Song, Yang and Dhariwal, Prafulla",
        "title": "Improved Techniques for Training Consistency Models",
        "booktitle": "International Conference on Learning Representations (ICLR)",
        "year": "2024",
    }),
    "geng2025improved": ("article", {
        "author": "Geng, Zhengyang and others",
        "title": "Improved Mean Flows",
        "journal": "preprint",
        "year": "2025",
    }),
    "pooladian2023multisample": ("inproceedings", {
        "author": "Pooladian, Aram-Alexandre and Ben-Hamu, Heli and Domingo-Enrich, Carles and Amos, Brandon and Lipman, Yaron and Chen, Ricky T. Q.",
        "title": "Multisample Flow Matching: Straightening Flows with Minibatch Couplings",
        "booktitle": "International Conference on Machine Learning (ICML)",
        "year": "2023",
    }),
    "vehtari2024pareto": ("article", {
        "author": "Vehtari, Aki and Simpson, Daniel and Gelman, Andrew and Yao, Yuling and Gabry, Jonah",
        "title": "Pareto Smoothed Importance Sampling",
        "journal": "Journal of Machine Learning Research",
        "volume": "25", "number": "72", "pages": "1--58",
        "year": "2024",
        "eprint": "1507.02646", "archiveprefix": "arXiv",
    }),
    "zhang2009new": ("article", {
        "author": "Zhang, Jin and Stephens, Michael A.",
        "title": "A New and Efficient Estimation Method for the Generalized {Pareto} Distribution",
        "journal": "Technometrics",
        "volume": "51", "number": "3", "pages": "316--325",
        "year": "2009",
        "doi": "10.1198/tech.2009.08017",
    }),
    "hairer1993solving": ("book", {
        "author": "Hairer, Ernst and N{\\o}rsett, Syvert P. and Wanner, Gerhard",
        "title": "Solving Ordinary Differential Equations {I}: Nonstiff Problems",
        "edition": "2", "publisher": "Springer",
        "year": "1993",
        "doi": "10.1007/978-3-540-78862-1",
    }),
    "kloeden1992numerical": ("book", {
        "author": "Kloeden, Peter E. and Platen, Eckhard",
        "title": "Numerical Solution of Stochastic Differential Equations",
        "publisher": "Springer",
        "year": "1992",
        "doi": "10.1007/978-3-662-12616-5",
    }),
}


def keys() -> list[str]:
    """All reference keys, sorted."""
    return sorted(REFERENCES)


def _lookup(key: str) -> tuple[str, dict[str, str]]:
    try:
        return REFERENCES[key]
    except KeyError:
        raise KeyError(
            f"unknown reference key {key!r}; `genmath cite --all` lists the {len(REFERENCES)} known keys"
        ) from None


def bibtex(key: str) -> str:
    """The BibTeX entry of ``key``."""
    kind, fields = _lookup(key)
    width = max(len(f) for f in fields)
    body = ",\n".join(f"  {name:<{width}} = {{{value}}}" for name, value in fields.items())
    return f"@{kind}{{{key},\n{body}\n}}"


def format_reference(key: str) -> str:
    """A one-line human-readable citation of ``key`` (authors, year, title, venue)."""
    _, f = _lookup(key)
    authors = f["author"].split(" and ")
    surnames = [a.split(",")[0].strip() for a in authors]
    who = surnames[0] + (" et al." if len(surnames) > 2 else f" and {surnames[1]}" if len(surnames) == 2 else "")
    venue = f.get("booktitle") or f.get("journal") or f.get("publisher", "")
    title = f["title"].replace("{", "").replace("}", "").replace('\\"', "")
    return f"{who} ({f['year']}). *{title}*. {venue}."
